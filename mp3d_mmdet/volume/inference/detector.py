"""Running a trained MP3D detector over every axial slice of a CT volume.

The input settings and the in-plane resize rule: :mod:`.settings`.

**Bounded memory.** The volume is held once; inputs are assembled per batch of
``batch_size`` slices (``batch_size`` x ``(H, W, N)`` float32 plus the resized copies), never
``N`` copies of the volume.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from tqdm import tqdm

from ...datasets.slice_sampling import neighbour_positions, sample_slices_from_volume
from ...utils.checkpoint_files import CheckpointFileError, load_state_dict_file
from ...utils.config import parse_config_text, type_name
from ...utils.torchvision_ops import ROUTED_NOTE, route_cuda_ops_if_needed
from ..io.ct_volume import CTVolume
from .precision import cpu_bf16_flags, precision_context, resolve_precision
from .settings import (InferenceSetupError, is_resize_transform,
                       load_inference_config, plan_in_plane_resize, slice_input_settings,
                       test_pipeline_cfg)

__all__ = ['SliceDetections', 'VolumeLesionDetector']


@dataclass
class SliceDetections:
    """Per-slice detections of a volume (slices not run have no boxes).

    Attributes:
        boxes: per axial slice ``z``, float32 ``(n_z, 4)``
            ``[x1, y1, x2, y2]`` in that slice's pixel grid (0-based; ``x`` = column).
        scores: per slice, float32 ``(n_z,)``, all >= ``score_thr``.
        slices_run: slices the detector ran on (all, unless a subset was asked).
        score_thr: smallest score kept.
        resize_rule: in-plane rule applied (see :func:`plan_in_plane_resize`).
        model_input_size: ``(w, h)`` of the resized slice.
        effective_pixel_spacing: ``(x, y)`` mm per model-input pixel.
        edge_replicated_slices: slices whose input replicates the first/last slice
            because some of its ``N`` positions fall outside the volume.
        timings: seconds spent ``assemble`` (slice sampling), ``pipeline`` (the test
            transforms), ``network`` (``model.test_step``), ``postprocess``.
    """
    boxes: List[np.ndarray]
    scores: List[np.ndarray]
    slices_run: List[int]
    score_thr: float
    resize_rule: str
    model_input_size: Tuple[int, int]
    effective_pixel_spacing: Tuple[float, float]
    edge_replicated_slices: int
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def num_detections(self) -> int:
        """Total number of kept boxes."""
        return int(sum(len(b) for b in self.boxes))


def _check_device(device: str) -> str:
    if device == 'cpu':
        return device
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise InferenceSetupError(f'--device {device} requested but CUDA is not available '
                                      f'(torch {torch.__version__}, '
                                      f'{torch.cuda.device_count()} GPUs); use --device cpu')
        index = device.split(':', 1)[1] if ':' in device else '0'
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise InferenceSetupError(f'--device {device}: no such GPU '
                                      f'({torch.cuda.device_count()} available)')
        return device
    raise InferenceSetupError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


class VolumeLesionDetector:
    """A detector built from an MP3D config (+ checkpoint) that runs over CT volumes.

    Args:
        config: config file or object; its test pipeline defines the input.
        checkpoint: weights (mmengine checkpoint or a plain state dict); None =
            the model's own initialisation (for timing only).
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        pixel_spacing: target in-plane mm/px; None = the config key
            ``volume_inference.pixel_spacing`` if set, else the default rule (module docstring).
        precision: ``'auto'``, ``'fp32'``, ``'bf16'`` or ``'fp16'``
            (:func:`~mp3d_mmdet.volume.inference.precision.resolve_precision`).

    Attributes:
        warnings: one-line notes about the set-up, e.g. a test scale that differs
            from the one recorded in the checkpoint's training config (the model would see
            lesions at another size than it learnt them).

    Raises:
        InferenceSetupError: bad config, missing/incompatible checkpoint, or unavailable device.
    """

    def __init__(self, config: Union[str, Config], checkpoint: Optional[str] = None,
                 device: str = 'cpu', pixel_spacing: Optional[float] = None,
                 precision: str = 'auto') -> None:
        from mmdet.registry import MODELS
        self.cfg = load_inference_config(config)
        self.config_path = config if isinstance(config, str) else self.cfg.filename
        self.settings = slice_input_settings(self.cfg)
        if pixel_spacing is None:
            pixel_spacing = (self.cfg.get('volume_inference') or {}).get('pixel_spacing')
        self.pixel_spacing = None if pixel_spacing is None else float(pixel_spacing)
        self.device = _check_device(device)
        self.checkpoint = checkpoint
        self.warnings: List[str] = []
        self.precision = resolve_precision(precision, self.device)
        if self.precision == 'bf16' and not self.device.startswith('cuda') and \
                not cpu_bf16_flags():
            self.warnings.append('bf16 on a CPU without AVX512_BF16 or AMX: emulated, slower '
                                 'than fp32 (--precision auto picks fp32 here)')
        init_default_scope(self.cfg.get('default_scope', 'mmdet'))
        self.model = MODELS.build(self.cfg.model)
        if checkpoint is None:
            logger = MMLogger.get_current_instance()
            level = logger.level
            logger.setLevel(logging.WARNING)  # init_weights logs every parameter's init
            try:
                self.model.init_weights()
            finally:
                logger.setLevel(level)
            self.dataset_meta = {'classes': ('lesion', )}
        else:
            try:
                state_dict, meta = load_state_dict_file(checkpoint)
            except (FileNotFoundError, CheckpointFileError) as error:
                raise InferenceSetupError(str(error)) from None
            self._load_weights(state_dict, checkpoint)
            self.dataset_meta = dict(meta.get('dataset_meta') or {'classes': ('lesion', )})
            self._check_recorded_test_scale(meta, checkpoint)
        self.model.dataset_meta = self.dataset_meta
        try:
            routed = route_cuda_ops_if_needed(self.device)
        except RuntimeError as error:
            raise InferenceSetupError(str(error)) from None
        if routed:
            self.warnings.append(ROUTED_NOTE)
        self.model.to(self.device)
        self.model.eval()

    def _check_recorded_test_scale(self, meta: Dict[str, Any], checkpoint: str) -> None:
        """Warn when the config's test Resize scale differs from the one in the config the
        checkpoint recorded (mmengine stores it as text in ``meta['cfg']``, read here without
        running it: :func:`mp3d_mmdet.utils.config.parse_config_text`)."""
        text = meta.get('cfg')
        if not isinstance(text, str) or self.settings.resize is None:
            return
        try:
            recorded_cfg = parse_config_text(text)
            pipeline = recorded_cfg['test_dataloader']['dataset']['pipeline']
        except (ValueError, KeyError, TypeError):
            return
        recorded = next((t.get('scale') for t in pipeline if isinstance(t, dict)
                         and type_name(t).endswith('Resize')), None)
        current = self.settings.resize.get('scale')
        if recorded is not None and current is not None and \
                tuple(recorded) != tuple(current):
            self.warnings.append(
                f'{checkpoint} was trained and tested at scale {tuple(recorded)}, the config '
                f'{self.config_path} tests at {tuple(current)}: lesions reach the model at '
                'another size (use the training config, or set the test scale with '
                '--cfg-options test_dataloader.dataset.pipeline.1.scale=..., or '
                '--pixel-spacing)')

    def _load_weights(self, state_dict: Dict[str, torch.Tensor], checkpoint: str) -> None:
        """Load ``state_dict`` into the model, every weight required (the modules' own
        adaptations apply, e.g. the GTM resampling another slice count); a mismatch is one
        line saying how far off the file is."""
        problem = None
        try:
            result = self.model.load_state_dict(state_dict, strict=False)
        except RuntimeError as error:  # torch reports shape mismatches this way
            shapes = [line.strip().rstrip('.') for line in str(error).splitlines()
                      if line.strip().startswith('size mismatch')]
            if not shapes:
                raise
            problem = f'{len(shapes)} weight(s) of another shape ({shapes[0]})'
        else:
            parts = []
            if result.missing_keys:
                parts.append(f'{len(result.missing_keys)} of the model\'s '
                             f'{len(self.model.state_dict())} weights missing (e.g. '
                             f'{result.missing_keys[0]})')
            if result.unexpected_keys:
                parts.append(f'{len(result.unexpected_keys)} unexpected (e.g. '
                             f'{result.unexpected_keys[0]})')
            problem = '; '.join(parts) or None
        if problem:
            raise InferenceSetupError(f'{checkpoint}: not a checkpoint of the model of '
                                      f'{self.config_path}: {problem}')

    def build_slice_pipeline(self, resize_cfg: Optional[Dict[str, Any]]) -> Compose:
        """The config's test transforms after LoadCTSlices, built by mmdet's registry.

        Args:
            resize_cfg: replaces the first Resize entry (None: drop it), as
                chosen by :func:`plan_in_plane_resize`.

        Returns:
            Maps ``dict(img=(H, W, N) float32, img_shape, ori_shape, ...)`` to
            ``dict(inputs=(N, h, w) tensor, data_samples=DetDataSample)``.
        """
        from mmdet.registry import TRANSFORMS
        transforms = []
        replaced = False
        for transform in test_pipeline_cfg(self.cfg)[1:]:
            if is_resize_transform(transform) and not replaced:
                replaced = True
                if resize_cfg is None:
                    continue
                transform = resize_cfg
            transforms.append(TRANSFORMS.build(transform))
        if not replaced and resize_cfg is not None:
            transforms.insert(0, TRANSFORMS.build(resize_cfg))
        return Compose(transforms)

    def edge_replicated_slices(self, num_slices: int, slice_interval_mm: float) -> int:
        """Number of slices (of a ``num_slices``-slice volume) whose ``N`` input positions
        reach beyond the first or last slice (their input replicates an edge slice)."""
        count = 0
        for z in range(num_slices):
            positions = neighbour_positions(z, self.settings.num_slices,
                                            self.settings.slice_interval, slice_interval_mm)
            count += bool(positions[0] < -1e-6 or positions[-1] > num_slices - 1 + 1e-6)
        return count

    def detect(self, volume: CTVolume, batch_size: int = 4, score_thr: float = 0.5,
               slices: Optional[Sequence[int]] = None, progress: bool = True
               ) -> SliceDetections:
        """Detect lesions on every axial slice of ``volume``.

        Args:
            volume: from :func:`read_ct_volume`.
            batch_size: slices per forward pass (memory: ``batch_size`` inputs).
            score_thr: smallest score kept (in [0, 1]).
            slices: run only these slice indices (timing); None = all.
            progress: show a tqdm progress bar.

        Returns:
            Boxes in each slice's own pixel grid.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if not 0.0 <= score_thr <= 1.0:
            raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
        depth = volume.num_slices
        run = list(range(depth)) if slices is None else [int(z) for z in slices]
        bad = [z for z in run if not 0 <= z < depth]
        if bad:
            raise ValueError(f'slice indices {bad[:5]} outside the volume of {depth} slices')
        sx, sy, sz = volume.spacing
        resize_cfg, input_size, rule = plan_in_plane_resize(
            self.settings.resize, volume.slice_shape, (sx, sy), self.pixel_spacing)
        pipeline = self.build_slice_pipeline(resize_cfg)
        height, width = volume.slice_shape
        s = self.settings
        boxes: List[np.ndarray] = [np.zeros((0, 4), np.float32) for _ in range(depth)]
        scores: List[np.ndarray] = [np.zeros((0, ), np.float32) for _ in range(depth)]
        timings = dict(assemble=0.0, pipeline=0.0, network=0.0, postprocess=0.0)
        batches = [run[i:i + batch_size] for i in range(0, len(run), batch_size)]
        bar = tqdm(total=len(run), desc='detecting lesions', unit='slice', disable=not progress)
        for batch in batches:
            items = []
            for z in batch:
                start = time.perf_counter()
                img = sample_slices_from_volume(volume.hu, z, s.num_slices, s.slice_interval,
                                                sz, s.hu_window, s.out_range)
                middle = time.perf_counter()
                items.append(pipeline(dict(
                    img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_id=z,
                    img_path=f'{volume.source_path}#slice={z}', slice_interval=sz,
                    pixel_spacing=sx)))
                timings['assemble'] += middle - start
                timings['pipeline'] += time.perf_counter() - middle
            start = time.perf_counter()
            with torch.no_grad(), precision_context(self.model, self.precision, self.device):
                outputs = self.model.test_step(pseudo_collate(items))
            middle = time.perf_counter()
            timings['network'] += middle - start
            for z, output in zip(batch, outputs):
                pred = output.pred_instances
                keep = pred.scores >= score_thr
                boxes[z] = pred.bboxes[keep].detach().cpu().numpy().astype(np.float32)
                scores[z] = pred.scores[keep].detach().cpu().numpy().astype(np.float32)
            timings['postprocess'] += time.perf_counter() - middle
            bar.update(len(batch))
        bar.close()
        effective = (width * sx / input_size[0], height * sy / input_size[1])
        return SliceDetections(boxes=boxes, scores=scores, slices_run=run, score_thr=score_thr,
                               resize_rule=rule, model_input_size=tuple(input_size),
                               effective_pixel_spacing=effective,
                               edge_replicated_slices=self.edge_replicated_slices(depth, sz),
                               timings=timings)

    def describe(self) -> Dict[str, Any]:
        """JSON-ready description of the model and its input (for the outputs)."""
        return dict(config=self.config_path, checkpoint=self.checkpoint, device=self.device,
                    model_type=self.cfg.model.get('type'),
                    backbone_type=self.cfg.model.get('backbone', {}).get('type'),
                    classes=list(self.dataset_meta.get('classes', ())),
                    pixel_spacing_target_mm=self.pixel_spacing, precision=self.precision,
                    **self.settings.to_dict())

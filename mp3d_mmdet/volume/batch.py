"""Lesion detection over many CT volumes, into one resumable results file.

:func:`detect_volume_batch` reads each pending input (:mod:`.inputs`), detects its lesions
and appends its line to the results file (:mod:`.results_file`: format and resume rules);
:func:`batch_settings` is what the file's header records of the model and settings, so that a
run resumed with other settings is refused.
"""
import hashlib
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

from .inference.detection import detect_lesions_in_volume
from .inputs import VolumeInput, check_unique_names
from .io.ct_volume import CTVolume, VolumeInputError
from .results_file import VolumeResultsFile, volume_record

__all__ = ['batch_settings', 'BatchSummary', 'detect_volume_batch', 'volume_detect_function']


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def batch_settings(config: Any, checkpoint: Optional[str],
                   cfg_options: Optional[Dict[str, Any]] = None, score_thr: float = 0.5,
                   pixel_spacing: Optional[float] = None, iou_thr: float = 0.3,
                   max_gap: int = 1, min_slices: int = 1, cfg: Any = None) -> Dict[str, Any]:
    """The settings recorded in (and compared with) a results file's header.

    Args:
        config (str | Config): the model config as given (a path, or a loaded ``Config``).
        checkpoint (str | None): the weights file (None: the model's own initialisation).
        cfg_options (dict | None): ``--cfg-options`` overrides.
        score_thr, pixel_spacing, iou_thr, max_gap, min_slices: as for
            :func:`~mp3d_mmdet.volume.detect_lesions_in_volume`.
        cfg (Config | None): ``config`` already loaded with ``cfg_options``
            (:func:`~mp3d_mmdet.volume.load_inference_config`), to save loading it again.

    Returns:
        dict: JSON-ready: ``config`` (absolute path), ``config_sha256`` (digest of the loaded
        config's ``model``, test pipeline and ``volume_inference``: what inference uses, base
        files and overrides included), ``cfg_options``, ``checkpoint`` (absolute path),
        ``checkpoint_sha256`` (of the file), ``score_thr``, ``pixel_spacing``, ``iou_thr``,
        ``max_gap``, ``min_slices``.

    Raises:
        InferenceSetupError: the config cannot be loaded, the checkpoint is missing or not a
            PyTorch checkpoint.
    """
    from mmdet.utils import get_test_pipeline_cfg

    from ..utils.checkpoint_files import CheckpointFileError, check_checkpoint_file
    from .inference.detector import InferenceSetupError, load_inference_config
    if cfg is None:
        cfg = load_inference_config(config, cfg_options)
    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except Exception:  # reported by the detector when it is built
        pipeline = None
    used = dict(model=cfg.get('model'), test_pipeline=pipeline,
                volume_inference=cfg.get('volume_inference'))
    text = json.dumps(used, sort_keys=True, default=repr)
    checkpoint_digest = None
    if checkpoint is not None:
        try:
            check_checkpoint_file(checkpoint)
        except (FileNotFoundError, CheckpointFileError) as error:
            raise InferenceSetupError(str(error)) from None
        checkpoint_digest = _file_sha256(checkpoint)
    config_path = config if isinstance(config, str) else cfg.filename
    return dict(
        config=osp.abspath(config_path) if config_path else None,
        config_sha256=hashlib.sha256(text.encode('utf-8')).hexdigest(),
        cfg_options=json.loads(json.dumps(cfg_options or {}, sort_keys=True, default=repr)),
        checkpoint=None if checkpoint is None else osp.abspath(checkpoint),
        checkpoint_sha256=checkpoint_digest, score_thr=float(score_thr),
        pixel_spacing=None if pixel_spacing is None else float(pixel_spacing),
        iou_thr=float(iou_thr), max_gap=int(max_gap), min_slices=int(min_slices))


@dataclass
class BatchSummary:
    """What :func:`detect_volume_batch` did.

    Attributes:
        path (str): the results file.
        done (list[str]): volumes detected and written by this run, in order.
        skipped (list[str]): inputs already in the file (not redone).
        failed (dict[str, str]): ``keep_going`` only: volumes that could not be read ->
            the one-line reason (not written; a rerun tries them again).
        not_in_inputs (list[str]): volumes in the file that are not among the inputs.
        warnings (list[str]): every warning reported during the run.
    """
    path: str
    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    not_in_inputs: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def volume_detect_function(detector: Any, batch_size: int = 4, score_thr: float = 0.5,
                           iou_thr: float = 0.3, max_gap: int = 1, min_slices: int = 1
                           ) -> Callable[[CTVolume], Any]:
    """``volume -> VolumeDetectionResult`` with a built
    :class:`~mp3d_mmdet.volume.VolumeLesionDetector` (no per-slice progress bar)."""
    def detect(volume: CTVolume) -> Any:
        return detect_lesions_in_volume(volume, detector=detector, batch_size=batch_size,
                                        score_thr=score_thr, iou_thr=iou_thr, max_gap=max_gap,
                                        min_slices=min_slices, progress=False)
    return detect


def detect_volume_batch(inputs: Sequence[VolumeInput], out_dir: str, settings: Dict[str, Any],
                        make_detect: Callable[[], Callable[[CTVolume], Any]],
                        restart: bool = False, keep_going: bool = False,
                        progress: bool = True,
                        report: Optional[Callable[[str], None]] = None,
                        restart_option: str = 'restart=True',
                        on_result: Optional[Callable[[VolumeInput, Any], None]] = None
                        ) -> BatchSummary:
    """Detect lesions in every volume not yet in ``out_dir/detections_3d.jsonl`` and append
    one line per volume as it finishes (rules: module docstring).

    Args:
        inputs (Sequence[VolumeInput]): the volumes (unique names).
        out_dir (str): output folder (created if missing).
        settings (dict): model settings for the header (:func:`batch_settings`).
        make_detect (callable): ``() -> detect``, called once, before the first pending
            volume is read (not at all when every input is finished, so that a finished batch
            does not build the model); ``detect(volume: CTVolume)`` returns an object with
            ``candidates`` (list[LesionCandidate]) and ``warnings`` (list[str]), e.g.
            :func:`volume_detect_function`.
        restart (bool): start a new results file (see :class:`VolumeResultsFile`).
        keep_going (bool): a volume that cannot be read (``VolumeInputError``, ``ValueError``
            or ``OSError`` while reading) is reported and skipped instead of stopping the run.
        progress (bool): a tqdm bar over the volumes (finished ones counted from the start).
        report (callable | None): called with each warning line as it happens (the volume's
            and the results file's warnings, skipped volumes); they are also collected in
            :attr:`BatchSummary.warnings`.
        restart_option (str): how ``restart`` is named in messages.
        on_result (callable | None): called with each input and its detection result before
            the volume's line is appended (e.g. to write the volume's viewer files): an
            interruption in it leaves the volume to be redone.

    Returns:
        BatchSummary

    Raises:
        ValueError: duplicate names; see :class:`VolumeResultsFile` and
            :meth:`VolumeResultsFile.pending`; without ``keep_going``, an unreadable volume
            (finished volumes stay in the file).
        InferenceSetupError: from ``make_detect`` / ``detect``.
    """
    check_unique_names(inputs)
    summary: Optional[BatchSummary] = None

    def note(message: str) -> None:
        summary.warnings.append(message)
        if report is not None:
            report(message)

    with VolumeResultsFile(out_dir, settings, restart, restart_option) as results:
        summary = BatchSummary(path=results.path)
        for message in results.warnings:
            note(message)
        todo = results.pending(inputs)
        names = {item.name for item in inputs}
        summary.skipped = [item.name for item in inputs if item.name in results.records]
        summary.not_in_inputs = [name for name in results.records if name not in names]
        if not todo:
            return summary
        detect = make_detect()
        bar = tqdm(total=len(inputs), initial=len(inputs) - len(todo), desc='volumes',
                   unit='volume', disable=not progress, dynamic_ncols=True)
        try:
            for item in todo:
                bar.set_postfix_str(item.name, refresh=False)
                try:
                    volume = item.read()
                except (VolumeInputError, ValueError, OSError) as error:
                    if not keep_going:
                        raise
                    summary.failed[item.name] = str(error)
                    note(f'{item.name}: skipped, cannot be read: {error}')
                    bar.update(1)
                    continue
                result = detect(volume)
                for message in result.warnings:
                    note(message)
                if on_result is not None:
                    on_result(item, result)
                results.append(volume_record(item, volume, result.candidates))
                summary.done.append(item.name)
                bar.update(1)
        finally:
            bar.close()
    return summary

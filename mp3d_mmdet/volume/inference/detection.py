"""Whole-volume lesion detection in one call: read -> detect per slice -> link into lesions.

:func:`detect_lesions_in_volume` chains :func:`read_ct_volume` (SimpleITK, checks, axial
reorientation), :meth:`VolumeLesionDetector.detect` (the config's N-slice input and test
pipeline, batched) and :func:`link_slice_detections` + :func:`measure_lesion_candidates`
(3D candidates with sizes in mm and physical centres).
:mod:`mp3d_mmdet.volume.outputs.writer` writes the result.
"""
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from mmengine.config import Config

from ..io.ct_reader import read_ct_volume
from ..io.ct_volume import CTVolume
from .linking import LesionCandidate, link_slice_detections, measure_lesion_candidates
from .detector import SliceDetections, VolumeLesionDetector, load_inference_config

__all__ = ['VolumeDetectionResult', 'detect_lesions_in_volume']


@dataclass
class VolumeDetectionResult:
    """Everything found in one volume.

    Attributes:
        volume: the volume as read (axial grid, geometry, warnings).
        detections: per-slice boxes and scores.
        candidates: 3D candidates, best first.
        linking: ``iou_thr``, ``max_gap``, ``min_slices`` used.
        model: :meth:`VolumeLesionDetector.describe` (config, checkpoint, input).
        warnings: the volume's warnings plus the inference's (edge replication).
        timings: seconds for ``read`` (only when the volume was read here),
            ``assemble``, ``pipeline``, ``network``, ``postprocess``, ``link``.
    """
    volume: CTVolume
    detections: SliceDetections
    candidates: List[LesionCandidate]
    linking: Dict[str, Any]
    model: Dict[str, Any]
    warnings: List[str] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)

    def detection_candidate_ids(self) -> Dict[tuple, Optional[int]]:
        """``{(slice, box index): candidate id}`` for every kept box (None: unlinked, i.e. its
        track had fewer than ``min_slices`` slices); duplicates map to their candidate."""
        mapping: Dict[tuple, Optional[int]] = {
            (z, i): None for z, boxes in enumerate(self.detections.boxes)
            for i in range(len(boxes))}
        for candidate in self.candidates:
            for z, i in zip(candidate.track.slices, candidate.track.detections):
                mapping[(z, i)] = candidate.candidate_id
            for z, i in candidate.track.duplicates:
                mapping[(z, i)] = candidate.candidate_id
        return mapping


def detect_lesions_in_volume(volume: Union[str, CTVolume],
                             config: Union[str, Config, None] = None,
                             checkpoint: Optional[str] = None,
                             device: str = 'cpu',
                             batch_size: int = 4,
                             score_thr: float = 0.5,
                             pixel_spacing: Optional[float] = None,
                             iou_thr: float = 0.3,
                             max_gap: int = 1,
                             min_slices: int = 1,
                             detector: Optional[VolumeLesionDetector] = None,
                             progress: bool = True,
                             precision: str = 'auto') -> VolumeDetectionResult:
    """Detect lesions in a CT volume and link them into 3D candidates.

    Args:
        volume: a path for :func:`read_ct_volume` or a volume already read.
        config: model config (ignored when ``detector`` is given).
        checkpoint: model weights.
        device: ``'cpu'`` or ``'cuda[:N]'``.
        batch_size: slices per forward pass.
        score_thr: smallest per-slice score kept and linked.
        pixel_spacing: target in-plane mm/px (see
            :mod:`mp3d_mmdet.volume.inference.detector`); None = the default rule.
        iou_thr: IoU that links boxes of nearby slices.
        max_gap: slices without a box that one candidate may bridge.
        min_slices: fewest slices of a reported candidate.
        detector: a detector to reuse (several volumes).
        progress: progress bar.
        precision: ``'auto'``, ``'fp32'``, ``'bf16'`` or ``'fp16'`` (ignored when
            ``detector`` is given: its own precision applies;
            :func:`~mp3d_mmdet.volume.inference.precision.resolve_precision`).

    Returns:
        VolumeDetectionResult

    Raises:
        VolumeInputError: unusable volume. InferenceSetupError: unusable config/checkpoint/device.
    """
    timings: Dict[str, float] = {}
    if detector is None:
        if config is None:
            raise ValueError('give a config (and checkpoint) or a detector')
        config = load_inference_config(config)  # fail fast on a bad config, before reading
    if not isinstance(volume, CTVolume):
        start = time.perf_counter()
        volume = read_ct_volume(volume)
        timings['read'] = time.perf_counter() - start
    if detector is None:
        detector = VolumeLesionDetector(config, checkpoint, device, pixel_spacing, precision)
    detections = detector.detect(volume, batch_size=batch_size, score_thr=score_thr,
                                 progress=progress)
    timings.update(detections.timings)
    start = time.perf_counter()
    tracks = link_slice_detections(detections.boxes, detections.scores, iou_thr=iou_thr,
                                   max_gap=max_gap, min_slices=min_slices)
    candidates = measure_lesion_candidates(tracks, volume.geometry, volume.original_geometry)
    timings['link'] = time.perf_counter() - start

    warnings = list(volume.warnings) + list(detector.warnings)
    s = detector.settings
    span_mm = (s.num_slices - 1) * s.slice_interval
    if detections.edge_replicated_slices == volume.num_slices:
        depth_mm = (volume.num_slices - 1) * volume.spacing[2]
        warnings.append(
            f'{volume.source_path}: the volume spans {depth_mm:.4g} mm ({volume.num_slices} '
            f'slices at {volume.spacing[2]:.4g} mm), less than the '
            f"model's {s.num_slices}-slice input ({span_mm:g} mm): every slice's input "
            'replicates the first/last slice')
    return VolumeDetectionResult(
        volume=volume, detections=detections, candidates=candidates,
        linking=dict(iou_thr=iou_thr, max_gap=max_gap, min_slices=min_slices),
        model=dict(detector.describe(), batch_size=batch_size, score_thr=score_thr),
        warnings=warnings, timings=timings)

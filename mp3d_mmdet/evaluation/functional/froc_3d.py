"""3D FROC of lesion candidates per CT volume: the protocol of DeepLesion's manual 3D test set.

The evaluation of LENS (Yan et al., IEEE TMI 2020; ``general_detection_evaluation.py`` of
viggin/DeepLesion_manual_test_set), vectorised with the 2D FROC's machinery
(:mod:`.froc`):

* boxes are 3D, ``[x1, y1, z1, x2, y2, z2]`` in inclusive voxel indices (a box covers
  ``x2 - x1 + 1`` voxels along x, likewise along y and z);
* a detection hits a lesion of its volume when their overlap is >= ``overlap_thr``: the
  intersection's volume over the *detection's* (``'iobb'``, the published setting with 0.3),
  over the union (``'iou'``), over the lesion's (``'iogt'``), or the larger of the last two
  (``'iobbgt'``);
* all detections of all volumes are ranked together; one detection hits every not-yet-hit
  lesion it overlaps enough; a detection that hits nothing new but overlaps a hit lesion is
  neither a hit nor a false positive; false positives are counted per *volume*;
* the sensitivity at ``f`` FPs per volume is 0 below the curve's first point, linear between
  its points with the *last* point at a rate the curve reaches exactly, and the final
  sensitivity beyond its end (the ``'deeplesion'`` reading of :mod:`.froc_protocols`). The
  published mean is over 0.125, 0.25, ..., 8 FPs per volume.
* ``key_slice_gt=True`` is the "P3D" mode: 3D detections against lesions drawn on one slice,
  ``[x1, y1, z, x2, y2, z]`` (DeepLesion's key-slice boxes): the overlap is the in-plane one
  (areas with the +1) where the detection's z range holds ``z``, and 0 otherwise.

Where this differs from the published script: detections with equal scores are ranked in
input order (the script's ``argsort`` leaves their order to the sorting algorithm); and the
script reads the curve with ``scipy.interpolate.interp1d`` without extrapolation, which for
float64 data takes ``numpy.interp``'s path in the scipy releases that have one and so returns
the last point at a rate the curve reaches exactly, as here; scipy releases whose linear
``interp1d`` does not go through ``numpy.interp`` return the first point there.
"""
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ...structures.boxes import OVERLAP_METRICS
from .froc import BoxMatching, FROCCurve, _curve, _flat_lesion_mask, _match

__all__ = [
    'DEFAULT_FPS_3D', 'LENS_READING', 'froc_curve_3d',
    'lesion_subset_froc_curves_3d', 'sens_at_fp_3d'
]

#: The FP-per-volume rates LENS reports sensitivity at, and averages over.
DEFAULT_FPS_3D = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: How LENS reads sensitivities off its curve: the rule of the 2D ``'deeplesion'`` protocol
#: (:mod:`.froc_protocols`); pass it to :meth:`FROCCurve.sens_at_fp` and to the plots.
LENS_READING = 'deeplesion'


def _matching(overlap: str, key_slice_gt: bool) -> BoxMatching:
    if overlap not in OVERLAP_METRICS:
        raise ValueError(f'overlap must be one of {OVERLAP_METRICS}, got {overlap!r}')
    return BoxMatching(axes=3, metric=overlap, legacy_plus_one=True,
                       key_slice_gt=bool(key_slice_gt), unit='volume', thr_name='overlap_thr')


def froc_curve_3d(boxes_per_volume: Sequence[np.ndarray],
                  gts_per_volume: Sequence[np.ndarray],
                  overlap: str = 'iobb',
                  overlap_thr: float = 0.3,
                  key_slice_gt: bool = False) -> FROCCurve:
    """The FROC curve of 3D lesion candidates over volumes (module docstring).

    Args:
        boxes_per_volume: one ``(n_i, 7)`` float array ``[x1, y1, z1, x2, y2, z2, score]``
            per volume (``n_i`` may be 0).
        gts_per_volume: one ``(g_i, 6)`` float array ``[x1, y1, z1, x2, y2, z2]`` per volume
            (with ``key_slice_gt``: ``[x1, y1, z, x2, y2, z]``); ``g_i`` may be 0.
        overlap: ``'iobb'``, ``'iou'``, ``'iogt'`` or ``'iobbgt'``.
        overlap_thr: a detection hits a lesion when their overlap is >= this, in ``(0, 1]``.
        key_slice_gt: score against key-slice ground truth (the "P3D" mode).

    Returns:
        :class:`~.froc.FROCCurve` with one point per detection in ranking order; its
        ``fp_per_image`` is per volume.

    Raises:
        ValueError: mismatched list lengths, malformed or inverted boxes, key-slice boxes with
            ``z1 != z2``, an unknown ``overlap``, ``overlap_thr`` outside ``(0, 1]``, or no
            lesion at all.
    """
    matches = _match(boxes_per_volume, gts_per_volume, overlap_thr,
                     _matching(overlap, key_slice_gt))
    return _curve(matches, np.ones(matches.num_gts, dtype=bool), others_are_fp=True)


def lesion_subset_froc_curves_3d(boxes_per_volume: Sequence[np.ndarray],
                                 gts_per_volume: Sequence[np.ndarray],
                                 subset_masks: Mapping[str, Sequence[np.ndarray]],
                                 overlap: str = 'iobb',
                                 overlap_thr: float = 0.3,
                                 key_slice_gt: bool = False) -> Dict[str, Optional[FROCCurve]]:
    """FROC curves of lesion subsets (e.g. sizes), every volume and detection kept.

    Each subset's curve is :func:`froc_curve_3d` with the ground truth filtered to the subset
    (a detection on other lesions only is a false positive), as LENS computes stratified
    FROCs; ranking and overlaps are computed once.

    Args:
        boxes_per_volume, gts_per_volume, overlap, overlap_thr, key_slice_gt: as for
            :func:`froc_curve_3d`.
        subset_masks: subset name -> one ``(g_i,)`` bool array per volume, or one ``(G,)``
            bool array over all lesions in volume order.

    Returns:
        subset name -> its curve, or None for a subset without lesions.
    """
    matches = _match(boxes_per_volume, gts_per_volume, overlap_thr,
                     _matching(overlap, key_slice_gt), allow_no_gt=True)
    curves: Dict[str, Optional[FROCCurve]] = {}
    for name, masks in subset_masks.items():
        counted = _flat_lesion_mask(masks, matches.gt_counts, f'subset_masks[{name!r}]')
        curves[name] = _curve(matches, counted, others_are_fp=True) if counted.any() else None
    return curves


def sens_at_fp_3d(boxes_per_volume: Sequence[np.ndarray],
                  gts_per_volume: Sequence[np.ndarray],
                  fps: Sequence[float] = DEFAULT_FPS_3D,
                  overlap: str = 'iobb',
                  overlap_thr: float = 0.3,
                  key_slice_gt: bool = False) -> np.ndarray:
    """Sensitivity at the given average false positives per volume (LENS protocol).

    Args:
        boxes_per_volume: one ``(n_i, 7)`` array ``[x1, y1, z1, x2, y2, z2, score]`` per
            volume, inclusive voxel indices.
        gts_per_volume: one ``(g_i, 6)`` array ``[x1, y1, z1, x2, y2, z2]`` per volume (with
            ``key_slice_gt``: ``[x1, y1, z, x2, y2, z]``).
        fps: FP-per-volume rates (finite, >= 0).
        overlap: ``'iobb'`` (published), ``'iou'``, ``'iogt'`` or ``'iobbgt'``.
        overlap_thr: overlap of a hit, in ``(0, 1]`` (published: 0.3).
        key_slice_gt: score against key-slice ground truth (the "P3D" mode).

    Returns:
        ``(len(fps),)`` float64 sensitivities in ``[0, 1]``.
    """
    curve = froc_curve_3d(boxes_per_volume, gts_per_volume, overlap, overlap_thr, key_slice_gt)
    return curve.sens_at_fp(fps, LENS_READING)

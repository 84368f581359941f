"""The DeepLesion FROC protocols (2D, and the 3D one of LENS) as plain per-detection loops: the
readable specification.

This is the evaluation routine shared by 3DCE, MULAN and AlignShift, rewritten step by step
with the conventions :mod:`mp3d_mmdet.evaluation.functional.froc` fixes where the published
code is silent or ambiguous:

* ties in score keep the input order (a stable sort on the descending score; the published
  code reverses an unstable ascending ``argsort``, so its order among equal scores is
  arbitrary);
* a detection on an image without ground truth is a false positive;
* at an FP rate the curve reaches exactly, the last point with that FP count is used;
  below the first point the sensitivity is 0, beyond the last point it is the final one
  (the ``'mp3d'`` protocol reads the curve with scipy instead:
  :func:`official_mp3d_sensitivity_reference`);
* optional "ignored" lesions (see ``ignored_gts_per_image``).

It is far too slow for validation (about a Python iteration per detection) and exists to be
read (the definition of the protocols), and to test
(``tests/test_evaluation/test_functional/test_froc_property.py``) and benchmark
(``tools/benchmark/froc_speed.py``) the vectorised
:func:`mp3d_mmdet.evaluation.functional.froc_curve` against.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ...structures import box_iou

__all__ = [
    'froc_curve_reference', 'interpolate_sensitivity_reference',
    'official_mp3d_sensitivity_reference', 'froc_curve_3d_reference',
    'lens_sensitivity_reference', 'overlap_3d_reference'
]


def froc_curve_reference(
        boxes_per_image: Sequence[np.ndarray],
        gts_per_image: Sequence[np.ndarray],
        iou_thr: float = 0.5,
        legacy_plus_one: bool = True,
        ignored_gts_per_image: Optional[Sequence[np.ndarray]] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """FROC curve, one detection at a time.

    Args:
        boxes_per_image: one ``(n_i, 5)`` array ``[x1, y1, x2, y2, score]`` per image.
        gts_per_image: one ``(g_i, 4)`` array ``[x1, y1, x2, y2]`` per image.
        iou_thr: IoU threshold of a hit.
        legacy_plus_one: inclusive-pixel IoU (``x2 - x1 + 1``) or continuous.
        ignored_gts_per_image: optional ``(h_i, 4)`` arrays of lesions whose detections are
            neither hits nor false positives.

    Returns:
        ``(sensitivity, fp_per_image)``, two ``(N,)`` float64 arrays, one point per detection
        in ranking order.
    """
    num_images = len(boxes_per_image)
    gts_per_image = [np.asarray(g, dtype=np.float64).reshape(-1, 4) for g in gts_per_image]
    if ignored_gts_per_image is None:
        ignored_gts_per_image = [np.zeros((0, 4)) for _ in range(num_images)]
    ignored_gts_per_image = [np.asarray(g, dtype=np.float64).reshape(-1, 4)
                             for g in ignored_gts_per_image]
    num_gts = sum(len(g) for g in gts_per_image)

    # 1. rank all detections of all images together (stable sort on the negated score)
    detections = []  # (score, image index, box)
    for image, boxes in enumerate(boxes_per_image):
        for row in np.asarray(boxes, dtype=np.float64).reshape(-1, 5):
            detections.append((row[4], image, row[:4]))
    order = np.argsort([-score for score, _, _ in detections], kind='stable')

    # 2. walk down the ranking
    hit = [np.zeros(len(g), dtype=bool) for g in gts_per_image]
    num_hits, num_fps = 0, 0
    hits_so_far: List[int] = []
    fps_so_far: List[int] = []
    for index in order:
        _, image, box = detections[index]
        overlaps = box_iou(box[None], gts_per_image[image], legacy_plus_one=legacy_plus_one)[0]
        if len(overlaps) > 0 and overlaps.max() >= iou_thr:
            for j in range(len(overlaps)):
                if overlaps[j] >= iou_thr and not hit[image][j]:
                    hit[image][j] = True
                    num_hits += 1
        elif len(ignored_gts_per_image[image]) > 0 and box_iou(
                box[None], ignored_gts_per_image[image],
                legacy_plus_one=legacy_plus_one).max() >= iou_thr:
            pass  # overlaps a lesion outside the evaluated set: neither hit nor FP
        else:
            num_fps += 1
        hits_so_far.append(num_hits)
        fps_so_far.append(num_fps)

    # 3. normalise: sensitivity by all lesions, FP rate by all images
    sensitivity = np.array(hits_so_far, dtype=np.float64) / num_gts
    fp_per_image = np.array(fps_so_far, dtype=np.float64) / num_images
    return sensitivity, fp_per_image


def interpolate_sensitivity_reference(fp_per_image: np.ndarray, sensitivity: np.ndarray,
                                      fps: Sequence[float]) -> np.ndarray:
    """Rule 4 of the protocol, one FP rate at a time.

    Returns:
        ``(len(fps),)`` float64 sensitivities.
    """
    result = []
    n = len(fp_per_image)
    for f in fps:
        if n == 0 or f < fp_per_image[0]:
            result.append(0.0)  # below the first point (or no detection at all)
            continue
        k = 0  # the last point with fp <= f
        while k + 1 < n and fp_per_image[k + 1] <= f:
            k += 1
        if fp_per_image[k] == f or k == n - 1:
            result.append(float(sensitivity[k]))  # reached exactly (last such point) or beyond
        else:  # fp_per_image[k] < f < fp_per_image[k + 1]
            t = (f - fp_per_image[k]) / (fp_per_image[k + 1] - fp_per_image[k])
            result.append(float(sensitivity[k] + (sensitivity[k + 1] - sensitivity[k]) * t))
    return np.array(result, dtype=np.float64)


def official_mp3d_sensitivity_reference(fp_per_image: np.ndarray, sensitivity: np.ndarray,
                                        fps: Sequence[float]) -> np.ndarray:
    """The official MP3D reading of a curve (one point per ranked detection): scipy's
    ``interp1d(fp_per_img, sens, fill_value='extrapolate')`` evaluated at ``fps``.

    Returns:
        ``(len(fps),)`` float64 values (NaN / inf where scipy divides by a zero-length segment).
    """
    from scipy.interpolate import interp1d

    with np.errstate(divide='ignore', invalid='ignore'):
        return np.asarray(interp1d(fp_per_image, sensitivity, fill_value='extrapolate')(fps),
                          dtype=np.float64)


def overlap_3d_reference(box: np.ndarray, gts: np.ndarray, metric: str,
                         key_slice_gt: bool) -> np.ndarray:
    """LENS's overlap of one ``[x1, y1, z1, x2, y2, z2]`` detection with ``(g, 6)`` lesions,
    inclusive voxel indices, written out per axis."""
    sides = []
    axes = (0, 1) if key_slice_gt else (0, 1, 2)
    for k in axes:
        lo = np.maximum(gts[:, k], box[k])
        hi = np.minimum(gts[:, k + 3], box[k + 3])
        sides.append(np.maximum(hi - lo + 1.0, 0.0))
    inter = np.prod(sides, axis=0)
    box_size = np.prod([box[k + 3] - box[k] + 1.0 for k in axes])
    gt_size = np.prod([gts[:, k + 3] - gts[:, k] + 1.0 for k in axes], axis=0)
    if key_slice_gt:  # the lesion's slice z (= z1 = z2) must lie in the detection's z range
        inter = inter * ((box[2] <= gts[:, 2]) & (gts[:, 2] <= box[5]))
    if metric == 'iou':
        return inter / (box_size + gt_size - inter)
    if metric == 'iobb':
        return inter / box_size
    if metric == 'iogt':
        return inter / gt_size
    return np.maximum(inter / box_size, inter / gt_size)  # 'iobbgt'


def froc_curve_3d_reference(boxes_per_volume: Sequence[np.ndarray],
                            gts_per_volume: Sequence[np.ndarray], overlap: str = 'iobb',
                            overlap_thr: float = 0.3,
                            key_slice_gt: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The LENS 3D FROC curve, one detection at a time (ties in input order).

    Returns:
        ``(sensitivity, fp_per_volume)``, one point per detection in ranking order.
    """
    entries = [(-float(box[6]), v, k) for v, boxes in enumerate(boxes_per_volume)
               for k, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 7))]
    entries.sort()  # by descending score, then volume, then index: a stable ranking
    hit = [np.zeros(len(np.asarray(g).reshape(-1, 6)), dtype=bool) for g in gts_per_volume]
    num_gts = sum(len(h) for h in hit)
    hits, misses, sens, fps = 0, 0, [], []
    for _, v, k in entries:
        box = np.asarray(boxes_per_volume[v], dtype=np.float64).reshape(-1, 7)[k]
        gts = np.asarray(gts_per_volume[v], dtype=np.float64).reshape(-1, 6)
        overlaps = overlap_3d_reference(box, gts, overlap, key_slice_gt)
        if len(overlaps) == 0 or overlaps.max() < overlap_thr:
            misses += 1
        else:
            for j in np.flatnonzero((overlaps >= overlap_thr) & ~hit[v]):
                hit[v][j] = True
                hits += 1
        sens.append(hits / num_gts)
        fps.append(misses / len(boxes_per_volume))
    return np.array(sens, dtype=np.float64), np.array(fps, dtype=np.float64)


def lens_sensitivity_reference(fp_per_volume: np.ndarray, sensitivity: np.ndarray,
                               fps: Sequence[float]) -> np.ndarray:
    """LENS's ``sens_at_FP``: 0 below the curve, scipy ``interp1d`` on it, the final value
    beyond it."""
    from scipy.interpolate import interp1d

    if len(fp_per_volume) == 0:
        return np.zeros(len(fps))
    inside = [f for f in fps if fp_per_volume[0] <= f <= fp_per_volume[-1]]
    read = (interp1d(fp_per_volume, sensitivity)(inside) if len(fp_per_volume) > 1 else
            np.full(len(inside), sensitivity[0]))
    return np.array([0.0 if f < fp_per_volume[0] else
                     sensitivity[-1] if f > fp_per_volume[-1] else float(read[inside.index(f)])
                     for f in fps], dtype=np.float64)

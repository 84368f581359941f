"""The DeepLesion FROC protocol as a plain per-detection loop: the readable specification.

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
read, and to test (``tests/test_evaluation/test_functional/test_froc_property.py``) and
benchmark (``tools/benchmark/froc_speed.py``) the vectorised
:func:`mp3d_mmdet.evaluation.functional.froc_curve` against.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mp3d_mmdet.structures import box_iou

__all__ = [
    'froc_curve_reference', 'interpolate_sensitivity_reference',
    'official_mp3d_sensitivity_reference'
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

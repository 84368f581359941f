"""Axis-aligned boxes: the one check of box arrays and the one overlap formula.

2D boxes are ``[x1, y1, x2, y2]`` in pixels, 3D boxes ``[x1, y1, z1, x2, y2, z2]`` in voxel
indices, each optionally followed by a score column. Two conventions exist in the
lesion-detection literature, and every caller names the one it means (``legacy_plus_one``
has no default):

* ``legacy_plus_one=True``: box coordinates are inclusive pixel indices, as in the published
  DeepLesion evaluation (3DCE, MULAN, AlignShift): a box covers ``x2 - x1 + 1`` by
  ``y2 - y1 + 1`` pixels, and the intersection of two boxes likewise has width
  ``min(x2, x2') - max(x1, x1') + 1``. The FROC metric and its overlays use it.
* ``legacy_plus_one=False``: continuous coordinates (width ``x2 - x1``), the convention of
  mmdet 2.x+ and pycocotools. Cross-slice linking of whole-volume detections uses it.

The 3D evaluation of DeepLesion's manual 3D test set (LENS) uses inclusive voxel indices on
every axis and four overlap measures (:data:`OVERLAP_METRICS`).
"""
from typing import Sequence

import numpy as np

__all__ = [
    'as_boxes', 'aligned_box_iou', 'box_iou', 'iou_from_columns', 'overlap_from_columns',
    'OVERLAP_METRICS'
]

#: box array columns -> (layout, number of axes)
_LAYOUTS = {
    4: ('[x1, y1, x2, y2]', 2),
    5: ('[x1, y1, x2, y2, score]', 2),
    6: ('[x1, y1, z1, x2, y2, z2]', 3),
    7: ('[x1, y1, z1, x2, y2, z2, score]', 3),
}


def as_boxes(boxes: np.ndarray, name: str = 'boxes', columns: int = 4) -> np.ndarray:
    """Check a box array and return it as float64 ``(k, columns)``.

    Args:
        boxes: ``(k, 4)`` ``[x1, y1, x2, y2]``; with ``columns=5`` ``(k, 5)``
            ``[x1, y1, x2, y2, score]``; with 6 ``[x1, y1, z1, x2, y2, z2]``; with 7
            ``[x1, y1, z1, x2, y2, z2, score]`` (array-like; an empty input of any shape is
            ``(0, columns)``).
        name: how the array is named in the message (e.g. ``'gts_per_image[3]'``).
        columns: 4, 5, 6 or 7.

    Returns:
        Float64 ``(k, columns)`` (the input itself when it already is one).

    Raises:
        ValueError: another shape, a non-finite value, or an inverted box (``x2 < x1``,
            ``y2 < y1`` or ``z2 < z1``); the message names the array and the row.
    """
    layout, axes = _LAYOUTS[columns]
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, columns)
    if boxes.ndim != 2 or boxes.shape[1] != columns:
        raise ValueError(f'{name} must have shape (k, {columns}) {layout}, got {boxes.shape}')
    bad = ~np.isfinite(boxes).all(axis=1)
    what = 'a non-finite value'
    if not bad.any():
        bad = (boxes[:, axes:2 * axes] < boxes[:, :axes]).any(axis=1)
        what = ('an inverted box (x2 < x1 or y2 < y1)' if axes == 2 else
                'an inverted box (x2 < x1, y2 < y1 or z2 < z1)')
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f'{name} has {what} in row {row}: {boxes[row].tolist()}')
    return boxes


def aligned_box_iou(boxes1: np.ndarray, boxes2: np.ndarray, *,
                    legacy_plus_one: bool) -> np.ndarray:
    """IoU of corresponding boxes: ``iou[k] = IoU(boxes1[k], boxes2[k])``.

    Args:
        boxes1: ``(..., 4)`` float array of ``[x1, y1, x2, y2]`` (``x2 >= x1``, ``y2 >= y1``).
        boxes2: ``(..., 4)`` float array, broadcastable against ``boxes1``.
        legacy_plus_one: add one pixel to every width and height (``x2 - x1 + 1``), as the
            published DeepLesion code does; ``False`` uses continuous widths ``x2 - x1``
            (see the module docstring).

    Returns:
        float64 array of the broadcast leading shape, values in ``[0, 1]``. A pair whose union
        is empty (two zero-area boxes in the continuous convention) has IoU 0.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64)
    boxes2 = np.asarray(boxes2, dtype=np.float64)
    if boxes1.shape[-1:] != (4,) or boxes2.shape[-1:] != (4,):
        raise ValueError(f'boxes must have a last dimension of 4 [x1, y1, x2, y2], got shapes '
                         f'{boxes1.shape} and {boxes2.shape}')
    return iou_from_columns(boxes1[..., 0], boxes1[..., 1], boxes1[..., 2], boxes1[..., 3],
                            boxes2[..., 0], boxes2[..., 1], boxes2[..., 2], boxes2[..., 3],
                            legacy_plus_one=legacy_plus_one)


def iou_from_columns(ax1: np.ndarray, ay1: np.ndarray, ax2: np.ndarray, ay2: np.ndarray,
                     bx1: np.ndarray, by1: np.ndarray, bx2: np.ndarray, by2: np.ndarray, *,
                     legacy_plus_one: bool) -> np.ndarray:
    """2D IoU of boxes given as separate float64 coordinate arrays (all mutually
    broadcastable): :func:`overlap_from_columns` with ``metric='iou'``.

    :func:`aligned_box_iou`, :func:`box_iou` and the vectorised FROC all call it, so they
    agree bit for bit. Passing contiguous coordinate columns is faster than strided
    ``(..., 4)`` views.

    Returns:
        float64 array of the broadcast shape, values in ``[0, 1]`` (0 where the union is empty).
    """
    return overlap_from_columns((ax1, ay1), (ax2, ay2), (bx1, by1), (bx2, by2),
                                legacy_plus_one=legacy_plus_one)


#: Overlap measures of a detection ``a`` with a ground-truth box ``b`` (LENS names, lower case):
#: intersection over union, over the detection's size ("bounding box"), over the ground
#: truth's size, and the larger of the last two.
OVERLAP_METRICS = ('iou', 'iobb', 'iogt', 'iobbgt')


def overlap_from_columns(a_lo: Sequence[np.ndarray], a_hi: Sequence[np.ndarray],
                         b_lo: Sequence[np.ndarray], b_hi: Sequence[np.ndarray], *,
                         legacy_plus_one: bool, metric: str = 'iou') -> np.ndarray:
    """Overlap of axis-aligned boxes in any number of dimensions, given as coordinate arrays.

    The single implementation of the overlap formulas: :func:`iou_from_columns` (2D IoU),
    :func:`box_iou`, the 2D and the 3D FROC all call it, so they agree bit for bit.

    Args:
        a_lo, a_hi: per axis (``x, y`` or ``x, y, z``), the lower and upper coordinates of
            boxes ``a`` (the detections); float64 arrays, all mutually broadcastable.
        b_lo, b_hi: the same for boxes ``b`` (the ground truth).
        legacy_plus_one: inclusive voxel indices (a side is ``hi - lo + 1``) or continuous.
        metric: one of :data:`OVERLAP_METRICS`.

    Returns:
        float64 array of the broadcast shape: the intersection's size over the union's
        (``'iou'``), over ``a``'s (``'iobb'``), over ``b``'s (``'iogt'``), or the larger of the
        last two (``'iobbgt'``); 0 where that size is 0.
    """
    if metric not in OVERLAP_METRICS:
        raise ValueError(f'overlap metric must be one of {OVERLAP_METRICS}, got {metric!r}')
    extra = 1.0 if legacy_plus_one else 0.0
    inter = size_a = size_b = None
    for alo, ahi, blo, bhi in zip(a_lo, a_hi, b_lo, b_hi):
        side = np.asarray(np.minimum(ahi, bhi))  # 0-d results stay arrays for in-place ops
        side -= np.maximum(alo, blo)
        side += extra
        np.maximum(side, 0.0, out=side)
        inter = side if inter is None else inter * side
        side_a, side_b = ahi - alo + extra, bhi - blo + extra
        size_a = side_a if size_a is None else size_a * side_a
        size_b = side_b if size_b is None else size_b * side_b
    if metric == 'iobbgt':
        return np.maximum(_ratio(inter, size_a), _ratio(inter, size_b))
    if metric == 'iou':
        union = np.asarray(size_a + size_b)
        union -= inter
        return _ratio(inter, union)
    return _ratio(inter, size_a if metric == 'iobb' else size_b)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` broadcast, 0 where the denominator is not positive."""
    shape = np.broadcast_shapes(np.shape(numerator), np.shape(denominator))
    out = np.zeros(shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)
    return out


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray, *, legacy_plus_one: bool) -> np.ndarray:
    """Pairwise IoU matrix: ``iou[i, j] = IoU(boxes1[i], boxes2[j])``.

    Args:
        boxes1: ``(n, 4)`` float array of ``[x1, y1, x2, y2]`` (checked by :func:`as_boxes`).
        boxes2: ``(m, 4)`` float array of ``[x1, y1, x2, y2]``.
        legacy_plus_one: the convention, see :func:`aligned_box_iou`.

    Returns:
        ``(n, m)`` float64 array (``(0, m)``/``(n, 0)`` when either input is empty).
    """
    boxes1 = as_boxes(boxes1, 'boxes1')
    boxes2 = as_boxes(boxes2, 'boxes2')
    return aligned_box_iou(boxes1[:, None, :], boxes2[None, :, :],
                           legacy_plus_one=legacy_plus_one)

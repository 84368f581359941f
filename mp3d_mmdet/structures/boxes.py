"""Axis-aligned boxes: the one check of box arrays and the one IoU.

Boxes are ``[x1, y1, x2, y2]`` in pixels, optionally followed by a score column. Two IoU
conventions exist in the lesion-detection literature, and every caller names the one it
means (``legacy_plus_one`` has no default):

* ``legacy_plus_one=True``: box coordinates are inclusive pixel indices, as in the published
  DeepLesion evaluation (3DCE, MULAN, AlignShift): a box covers ``x2 - x1 + 1`` by
  ``y2 - y1 + 1`` pixels, and the intersection of two boxes likewise has width
  ``min(x2, x2') - max(x1, x1') + 1``. The FROC metric and its overlays use it.
* ``legacy_plus_one=False``: continuous coordinates (width ``x2 - x1``), the convention of
  mmdet 2.x+ and pycocotools. Cross-slice linking of whole-volume detections uses it.
"""
import numpy as np

__all__ = ['as_boxes', 'aligned_box_iou', 'box_iou', 'iou_from_columns']


def as_boxes(boxes: np.ndarray, name: str = 'boxes', columns: int = 4) -> np.ndarray:
    """Check a box array and return it as float64 ``(k, columns)``.

    Args:
        boxes: ``(k, 4)`` ``[x1, y1, x2, y2]`` or, with ``columns=5``, ``(k, 5)``
            ``[x1, y1, x2, y2, score]`` (array-like; an empty input of any shape is
            ``(0, columns)``).
        name: how the array is named in the message (e.g. ``'gts_per_image[3]'``).
        columns: 4 or 5.

    Returns:
        np.ndarray: float64 ``(k, columns)`` (the input itself when it already is one).

    Raises:
        ValueError: another shape, a non-finite value, or an inverted box (``x2 < x1`` or
            ``y2 < y1``); the message names the array and the row.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, columns)
    layout = '[x1, y1, x2, y2, score]' if columns == 5 else '[x1, y1, x2, y2]'
    if boxes.ndim != 2 or boxes.shape[1] != columns:
        raise ValueError(f'{name} must have shape (k, {columns}) {layout}, got {boxes.shape}')
    bad = ~np.isfinite(boxes).all(axis=1)
    what = 'a non-finite value'
    if not bad.any():
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        what = 'an inverted box (x2 < x1 or y2 < y1)'
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
    """IoU of boxes given as separate float64 coordinate arrays (all mutually broadcastable).

    The single implementation of the IoU formula: :func:`aligned_box_iou`, :func:`box_iou` and
    the vectorised FROC all call it, so they agree bit for bit. Passing contiguous coordinate
    columns is faster than strided ``(..., 4)`` views.

    Returns:
        float64 array of the broadcast shape, values in ``[0, 1]`` (0 where the union is empty).
    """
    extra = 1.0 if legacy_plus_one else 0.0
    inter_w = np.asarray(np.minimum(ax2, bx2))  # 0-d results stay arrays for in-place ops
    inter_w -= np.maximum(ax1, bx1)
    inter_w += extra
    np.maximum(inter_w, 0.0, out=inter_w)
    inter_h = np.asarray(np.minimum(ay2, by2))
    inter_h -= np.maximum(ay1, by1)
    inter_h += extra
    np.maximum(inter_h, 0.0, out=inter_h)
    inter = inter_w * inter_h
    union = np.asarray((ax2 - ax1 + extra) * (ay2 - ay1 + extra)
                       + (bx2 - bx1 + extra) * (by2 - by1 + extra))
    union -= inter
    iou = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=iou, where=union > 0)
    return iou


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

"""Pictures of detections against ground truth on CT slices.

One drawing routine serves the demo's test-slice overlays (``mp3d-draw-detections``) and
the whole-volume detector's candidate overlays: a slice in HU is shown in a display window
(soft tissue by default), ground-truth boxes in green, detections with their scores in red
where they hit a ground-truth box and in orange where they do not. A hit is what the FROC
metric counts as one: IoU >= 0.5 with +1-pixel widths (``x2 - x1 + 1``, the published
DeepLesion convention) by default.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ..structures import box_iou
from ..utils.hu_window import SOFT_TISSUE_WINDOW, window_hu

GT_COLOR = (80, 220, 80)       # BGR green
HIT_COLOR = (60, 60, 255)      # BGR red
MISS_COLOR = (0, 200, 255)     # BGR orange: detection that matches no ground truth


def draw_lesion_overlay(hu: np.ndarray,
                        gt_boxes: Optional[np.ndarray] = None,
                        pred_boxes: Optional[np.ndarray] = None,
                        pred_scores: Optional[np.ndarray] = None,
                        score_thr: float = 0.3,
                        window: Tuple[float, float] = SOFT_TISSUE_WINDOW,
                        title: Optional[str] = None,
                        upscale: int = 1,
                        legend: bool = True,
                        pixel_spacing_mm: Optional[float] = None,
                        iou_thr: float = 0.5,
                        legacy_plus_one: bool = True) -> np.ndarray:
    """Draw ground truth and detections on one CT slice.

    Args:
        hu: ``(H, W)`` slice in HU.
        gt_boxes: ``(g, 4)`` ground-truth ``[x1, y1, x2, y2]`` in pixels of ``hu`` (or None).
        pred_boxes: ``(n, 4)`` detected boxes in the same coordinates (or None).
        pred_scores: ``(n,)`` detection scores; boxes below ``score_thr`` are not drawn.
        score_thr: minimum score of a drawn detection.
        window: display window in HU.
        title: optional text drawn in the top-left corner.
        upscale: integer zoom factor applied before drawing (readable text on small slices).
        legend: draw the colour legend (ground truth / hit / false positive) bottom left;
            turn it off where no ground truth exists (whole-volume candidates).
        pixel_spacing_mm: mm per pixel of ``hu``; if given, a scale bar (1, 2 or 5 x 10^k mm,
            about a fifth of the width) is drawn bottom right.
        iou_thr: a detection with IoU >= ``iou_thr`` with any ground-truth box is a hit.
        legacy_plus_one: IoU with +1-pixel widths, as the FROC metric's default; False for
            continuous coordinates (``FROCMetric(legacy_plus_one=False)``).

    Returns:
        ``(H * upscale, W * upscale, 3)`` uint8 BGR image (write it with ``cv2.imwrite``).
    """
    if hu.ndim != 2:
        raise ValueError(f'hu must be a 2D (H, W) slice, got shape {tuple(hu.shape)}')
    gt = np.zeros((0, 4)) if gt_boxes is None else np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    boxes = (np.zeros((0, 4)) if pred_boxes is None else
             np.asarray(pred_boxes, np.float64).reshape(-1, 4))
    scores = np.ones(len(boxes)) if pred_scores is None else np.asarray(pred_scores, np.float64)
    if len(scores) != len(boxes):
        raise ValueError(f'pred_scores has {len(scores)} entries for {len(boxes)} pred_boxes')
    keep = scores >= score_thr
    boxes, scores = boxes[keep], scores[keep]

    grey = window_hu(hu, window)
    if upscale > 1:
        grey = cv2.resize(grey, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    hits = (box_iou(boxes, gt, legacy_plus_one=legacy_plus_one) >= iou_thr).any(axis=1)

    def corners(box: np.ndarray) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        x1, y1, x2, y2 = (box * upscale).round().astype(int)
        return (int(x1), int(y1)), (int(x2), int(y2))

    for box in gt:
        p1, p2 = corners(box)
        cv2.rectangle(canvas, p1, p2, GT_COLOR, 2)
    for box, score, hit in zip(boxes, scores, hits):
        p1, p2 = corners(box)
        color = HIT_COLOR if hit else MISS_COLOR
        cv2.rectangle(canvas, p1, p2, color, 1)
        cv2.putText(canvas, f'{score:.2f}', (p1[0], max(p1[1] - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    if title:
        cv2.putText(canvas, title, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    if legend:
        _draw_legend(canvas)
    if pixel_spacing_mm is not None:
        _draw_scale_bar(canvas, float(pixel_spacing_mm) / upscale)
    return canvas


def _draw_scale_bar(canvas: np.ndarray, mm_per_px: float) -> None:
    """Draw a white scale bar with its length in mm in the bottom-right corner (in place)."""
    if not mm_per_px > 0:
        raise ValueError(f'pixel_spacing_mm must be > 0, got {mm_per_px!r}')
    height, width = canvas.shape[:2]
    wanted_mm = width * mm_per_px / 5.0
    exponent = 10.0**np.floor(np.log10(wanted_mm))
    length_mm = max((m * exponent for m in (1, 2, 5) if m * exponent <= wanted_mm),
                    default=exponent)
    length_px = int(round(length_mm / mm_per_px))
    x2, y = width - 8, height - 10
    cv2.line(canvas, (x2 - length_px, y), (x2, y), (255, 255, 255), 2)
    cv2.putText(canvas, f'{length_mm:g} mm', (x2 - length_px, y - 5), cv2.FONT_HERSHEY_SIMPLEX,
                0.4, (255, 255, 255), 1, cv2.LINE_AA)


def _draw_legend(canvas: np.ndarray) -> None:
    """Write the colour legend in the bottom-left corner of ``canvas`` (in place)."""
    entries: Sequence[Tuple[str, Tuple[int, int, int]]] = (
        ('ground truth', GT_COLOR), ('detection (hit)', HIT_COLOR),
        ('detection (false positive)', MISS_COLOR))
    y = canvas.shape[0] - 8 - 14 * (len(entries) - 1)
    for text, color in entries:
        cv2.putText(canvas, text, (5, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
        y += 14

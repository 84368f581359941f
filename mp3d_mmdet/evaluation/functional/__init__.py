"""Functional lesion-detection evaluation: FROC under the DeepLesion protocol, box IoU, COCO AP.

``froc_reference`` (the plain-loop specification of the protocol) is importable as
``mp3d_mmdet.evaluation.functional.froc_reference`` but not re-exported: use the vectorised
functions here.
"""
from .box_iou import aligned_box_iou, box_iou, iou_from_columns
from .coco_ap import coco_ap
from .froc import (DEFAULT_FPS, FROCCurve, froc_curve, interpolate_sensitivity,
                   lesion_subset_froc_curves, sens_at_fp)
from .froc_plot import plot_froc_curves

__all__ = [
    'aligned_box_iou', 'box_iou', 'iou_from_columns', 'coco_ap', 'DEFAULT_FPS', 'FROCCurve',
    'froc_curve', 'interpolate_sensitivity', 'lesion_subset_froc_curves', 'sens_at_fp',
    'plot_froc_curves'
]

"""Functional lesion-detection evaluation: FROC under the DeepLesion protocol, COCO AP, plots.

Box IoU lives with the boxes (:mod:`mp3d_mmdet.structures.boxes`).
"""
from .coco_ap import coco_ap
from .froc import (DEFAULT_FPS, FROCCurve, froc_curve, interpolate_sensitivity,
                   lesion_subset_froc_curves, sens_at_fp)
from .froc_plot import plot_froc_curves

__all__ = [
    'coco_ap', 'DEFAULT_FPS', 'FROCCurve',
    'froc_curve', 'interpolate_sensitivity', 'lesion_subset_froc_curves', 'sens_at_fp',
    'plot_froc_curves'
]

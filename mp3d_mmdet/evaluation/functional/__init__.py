"""Functional lesion-detection evaluation: FROC under the DeepLesion protocols, the 3D FROC of
volumes (LENS), COCO AP, plots.

Box IoU lives with the boxes (:mod:`mp3d_mmdet.structures.boxes`).
"""
from .coco_ap import coco_ap
from .froc import (DEFAULT_FPS, BoxMatching, FROCCurve, froc_curve, lesion_subset_froc_curves,
                   sens_at_fp)
from .froc_3d import (DEFAULT_FPS_3D, LENS_READING, froc_curve_3d,
                      lesion_subset_froc_curves_3d, sens_at_fp_3d)
from .froc_plot import plot_froc_curves
from .froc_protocols import (FROC_PROTOCOLS, FROCProtocol, get_froc_protocol,
                             interp1d_sensitivity, interpolate_sensitivity)

__all__ = [
    'coco_ap', 'DEFAULT_FPS', 'FROCCurve', 'froc_curve', 'lesion_subset_froc_curves',
    'sens_at_fp', 'plot_froc_curves', 'FROC_PROTOCOLS', 'FROCProtocol', 'get_froc_protocol',
    'interp1d_sensitivity', 'interpolate_sensitivity', 'BoxMatching', 'DEFAULT_FPS_3D',
    'LENS_READING', 'froc_curve_3d', 'lesion_subset_froc_curves_3d', 'sens_at_fp_3d'
]

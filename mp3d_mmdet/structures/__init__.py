"""Data structures shared by the plugin's parts: boxes."""
from .boxes import OVERLAP_METRICS, aligned_box_iou, as_boxes, box_iou, overlap_from_columns

__all__ = ['as_boxes', 'box_iou', 'aligned_box_iou', 'overlap_from_columns', 'OVERLAP_METRICS']

"""Data structures shared by the plugin's parts: boxes."""
from .boxes import aligned_box_iou, as_boxes, box_iou

__all__ = ['as_boxes', 'box_iou', 'aligned_box_iou']

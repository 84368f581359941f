"""Overlays of detections and ground truth on CT slices."""
from .lesion_overlay import SOFT_TISSUE_WINDOW, draw_lesion_overlay, window_hu

__all__ = ['SOFT_TISSUE_WINDOW', 'draw_lesion_overlay', 'window_hu']

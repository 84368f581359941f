"""Neck adapters turning the backbone's 3D maps into 2D maps for mmdet's FPN."""
from .center_slice_transform import CenterSliceTransform
from .group_transform import (GroupTransform, adapt_gtm_weights, gtm_weight_levels,
                              resample_slice_weights)

__all__ = [
    'GroupTransform', 'CenterSliceTransform', 'resample_slice_weights', 'gtm_weight_levels',
    'adapt_gtm_weights'
]

"""Transforms of the N-slice CT pipelines (registered in ``mmdet.registry.TRANSFORMS``)."""
from .loading import (LoadCTSlices, annotation_source, check_image_size, read_png_size,
                      read_uint16_png)
from .multichannel_pad import MultiChannelPad
from .rgb_to_slices import SLICE_ORDER, RGBToSlices
from .slice_wise_resize import SliceWiseResize

__all__ = [
    'LoadCTSlices', 'read_uint16_png', 'read_png_size', 'check_image_size', 'annotation_source',
    'MultiChannelPad', 'RGBToSlices', 'SLICE_ORDER', 'SliceWiseResize'
]

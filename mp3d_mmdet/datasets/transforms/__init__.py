"""Transforms of the DeepLesion pipelines: N-slice CT loading and the shared slice maths."""
from .loading import LoadCTSlices, read_uint16_png
from .multichannel_pad import MultiChannelPad
from .rgb_to_slices import SLICE_ORDER, RGBToSlices
from .slice_sampling import (DEFAULT_HU_WINDOW, DEFAULT_OUT_RANGE, PNG_HU_OFFSET, SlicePlan,
                             assemble_slices, clip_and_scale_hu, is_channel_planar,
                             neighbour_positions, neighbour_sampling_plan, png_to_hu,
                             sample_slices_from_volume)
from .slice_wise_resize import SliceWiseResize

__all__ = [
    'RGBToSlices', 'SLICE_ORDER',
    'LoadCTSlices', 'read_uint16_png', 'MultiChannelPad', 'SliceWiseResize', 'DEFAULT_HU_WINDOW',
    'DEFAULT_OUT_RANGE', 'PNG_HU_OFFSET', 'SlicePlan', 'assemble_slices', 'clip_and_scale_hu',
    'is_channel_planar', 'neighbour_positions', 'neighbour_sampling_plan', 'png_to_hu',
    'sample_slices_from_volume'
]

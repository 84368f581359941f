"""DeepLesion: the dataset, its annotation files (``DL_info.csv`` and the official JSON), the
N-slice input maths and the transforms (the synthetic generator: :mod:`mp3d_mmdet.synthetic`)."""
from .deeplesion import DeepLesionDataset
from .deeplesion_json import annotation_file_format, read_deeplesion_json, write_deeplesion_json
from .dl_info import (DL_INFO_COLUMNS, LESION_TYPE_NAMES, SPLIT_CODES, DLInfoRow, read_dl_info,
                      write_dl_info)
from .slice_sampling import (DEFAULT_HU_WINDOW, DEFAULT_OUT_RANGE, PNG_HU_OFFSET, SlicePlan,
                             assemble_slices, clip_and_scale_hu, is_channel_planar,
                             neighbour_positions, neighbour_sampling_plan, png_to_hu,
                             sample_slices_from_volume)
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = [
    'DeepLesionDataset', 'annotation_file_format', 'read_deeplesion_json',
    'write_deeplesion_json', 'DL_INFO_COLUMNS', 'LESION_TYPE_NAMES', 'SPLIT_CODES', 'DLInfoRow',
    'read_dl_info', 'write_dl_info', 'DEFAULT_HU_WINDOW', 'DEFAULT_OUT_RANGE', 'PNG_HU_OFFSET',
    'SlicePlan', 'assemble_slices', 'clip_and_scale_hu', 'is_channel_planar',
    'neighbour_positions', 'neighbour_sampling_plan', 'png_to_hu', 'sample_slices_from_volume'
]
__all__ += list(_transforms_all)

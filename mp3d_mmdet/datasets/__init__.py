"""DeepLesion dataset, its slice-loading transforms and the synthetic generator."""
from .deeplesion import DeepLesionDataset
from .deeplesion_pipelines import (DEEPLESION_META_KEYS, deeplesion_test_pipeline,
                                   deeplesion_train_pipeline)
from .dl_info import (DL_INFO_COLUMNS, LESION_TYPE_NAMES, SPLIT_CODES, DLInfoRow, read_dl_info,
                      write_dl_info)
from .synthetic import make_synthetic_deeplesion
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = [
    'DeepLesionDataset', 'DEEPLESION_META_KEYS', 'deeplesion_train_pipeline',
    'deeplesion_test_pipeline', 'DL_INFO_COLUMNS', 'LESION_TYPE_NAMES', 'SPLIT_CODES',
    'DLInfoRow', 'read_dl_info', 'write_dl_info', 'make_synthetic_deeplesion'
] + list(_transforms_all)

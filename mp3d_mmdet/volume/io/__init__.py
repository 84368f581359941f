"""Reading CT volumes (files, DICOM series, DeepLesion sub-volumes) onto an axial grid."""
from .ct_volume import (CTVolume, STANDARD_ORIENTATION, SUPPORTED_FILE_SUFFIXES, VolumeGeometry,
                        VolumeInputError)
from .ct_reader import read_ct_volume
from .deeplesion_subvolumes import (DEEPLESION_SOURCE_FORMAT, DeepLesionSubvolume,
                                    list_deeplesion_subvolumes, parse_subvolume_name,
                                    read_deeplesion_subvolume, write_deeplesion_subvolume_nifti)

__all__ = [
    'VolumeInputError', 'VolumeGeometry', 'CTVolume', 'SUPPORTED_FILE_SUFFIXES',
    'STANDARD_ORIENTATION', 'read_ct_volume', 'DeepLesionSubvolume', 'list_deeplesion_subvolumes',
    'read_deeplesion_subvolume', 'parse_subvolume_name', 'write_deeplesion_subvolume_nifti',
    'DEEPLESION_SOURCE_FORMAT'
]

"""The CT volume of whole-volume inference: HU voxels on an axial grid, and its geometry.

Array and coordinate conventions: :attr:`CTVolume.hu` is ``(Z, Y, X)`` (numpy order of
SimpleITK's ``(x, y, z)`` index), int16 or float32 HU. A continuous index ``(x, y, z)``
(pixel centres at integers, ``x`` = column, ``y`` = row, ``z`` = slice) maps to physical mm
as ``origin + direction @ (index * spacing)`` -- exactly
``Image.TransformContinuousIndexToPhysicalPoint``.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

__all__ = ['VolumeInputError', 'VolumeGeometry', 'CTVolume', 'SUPPORTED_FILE_SUFFIXES',
           'STANDARD_ORIENTATION']

#: File name endings read as single-file volumes (a folder is read as a DICOM series).
SUPPORTED_FILE_SUFFIXES = ('.nii', '.nii.gz', '.mha', '.mhd', '.nrrd', '.nhdr')
#: Orientation of the processed grid (DICOM letters: axes point to Left, Posterior, Superior).
STANDARD_ORIENTATION = 'LPS'


class VolumeInputError(ValueError):
    """The input cannot be used as a CT volume; the message is one line naming file and cause."""


@dataclass(frozen=True)
class VolumeGeometry:
    """Voxel grid of a 3D image in physical space (SimpleITK conventions).

    Attributes:
        size: ``(X, Y, Z)`` voxels.
        spacing: ``(sx, sy, sz)`` mm.
        origin: physical position (mm) of voxel ``(0, 0, 0)``.
        direction: 9 values, the 3 x 3 direction matrix row by row (column
            ``i`` = unit vector of index axis ``i`` in physical space).
        orientation: 3-letter DICOM orientation code of the direction (e.g. ``'LPS'``).
    """
    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[float, ...]
    orientation: str

    @classmethod
    def of_image(cls, image: sitk.Image) -> 'VolumeGeometry':
        """The geometry of a 3D SimpleITK image."""
        direction = tuple(float(d) for d in image.GetDirection())
        return cls(tuple(int(s) for s in image.GetSize()),
                   tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()), direction,
                   sitk.DICOMOrientImageFilter_GetOrientationFromDirectionCosines(direction))

    @property
    def direction_matrix(self) -> np.ndarray:
        """float64 ``(3, 3)`` direction matrix."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    def index_to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices -> physical points.

        Args:
            index: ``(..., 3)`` continuous ``(x, y, z)`` indices.

        Returns:
            Float64 ``(..., 3)`` physical ``(x, y, z)`` mm,
            ``origin + direction @ (index * spacing)``.
        """
        scaled = np.asarray(index, dtype=np.float64) * np.asarray(self.spacing)
        return scaled @ self.direction_matrix.T + np.asarray(self.origin)

    def physical_to_index(self, point: np.ndarray) -> np.ndarray:
        """Physical points ``(..., 3)`` mm -> float64 continuous ``(x, y, z)`` indices."""
        relative = np.asarray(point, dtype=np.float64) - np.asarray(self.origin)
        return (relative @ np.linalg.inv(self.direction_matrix).T) / np.asarray(self.spacing)

    def to_dict(self) -> Dict[str, object]:
        """JSON-ready dict with keys ``size``, ``spacing``, ``origin``, ``direction``,
        ``orientation``."""
        return dict(size=list(self.size), spacing=list(self.spacing), origin=list(self.origin),
                    direction=list(self.direction), orientation=self.orientation)


@dataclass
class CTVolume:
    """A CT volume in HU on an axial (``'LPS'``-oriented) grid, with where it came from.

    Attributes:
        hu: ``(Z, Y, X)`` int16 or float32 HU; ``hu[z]`` is axial slice ``z``.
        geometry: grid of ``hu`` (after reorientation).
        original_geometry: grid of the file as stored.
        source_path: the file or DICOM folder read.
        source_format: ``'nifti'``, ``'metaimage'``, ``'nrrd'``, ``'dicom'`` or
            ``'other'`` (another format SimpleITK reads).
        reoriented: whether the stored axes were permuted/flipped.
        intensity_stats: ``min``, ``max``, ``p0.5``, ``p50``, ``p99.5`` of the HU values
            (percentiles on a regular subsample of at most 1e6 voxels).
        warnings: one-line messages about the input (reorientation, obliquity,
            non-HU intensities, non-uniform DICOM slice gaps, several DICOM series ...).
        dicom_series_uid: the series read from a DICOM folder.
        metadata: identity and display fields of the input, only those it
            has: DICOM ``PatientName``, ``PatientID``, ``PatientBirthDate``, ``PatientSex``,
            ``StudyDate``, ``StudyDescription``, ``AccessionNumber``, ``SeriesDescription``,
            ``SeriesNumber``, ``Modality``, ``WindowCenter``, ``WindowWidth`` (first value,
            HU; of the series' first file), or a NIfTI header's ``Description`` (``descrip``).
    """
    hu: np.ndarray
    geometry: VolumeGeometry
    original_geometry: VolumeGeometry
    source_path: str
    source_format: str
    reoriented: bool
    intensity_stats: Dict[str, float]
    warnings: List[str] = field(default_factory=list)
    dicom_series_uid: Optional[str] = None
    metadata: Dict[str, str] = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        """``Z``, the number of axial slices."""
        return int(self.hu.shape[0])

    @property
    def slice_shape(self) -> Tuple[int, int]:
        """``(H, W)`` = ``(Y, X)`` of one axial slice."""
        return int(self.hu.shape[1]), int(self.hu.shape[2])

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """``(sx, sy, sz)`` mm of the axial grid."""
        return self.geometry.spacing

    def to_original_index(self, index: np.ndarray) -> np.ndarray:
        """Continuous ``(x, y, z)`` indices of the axial grid ``(..., 3)`` -> the same points
        as continuous indices of the file's own voxel grid (identical unless reoriented)."""
        return self.original_geometry.physical_to_index(self.geometry.index_to_physical(index))

"""The source DICOM series of a volume result, as the SR references it.

:func:`read_source_series` reads the series' headers again; :func:`slice_images` finds, for
each axial-grid slice, the source image whose plane it is (none when the series was stored
in another orientation and reoriented); :func:`image_points` maps patient coordinates to an
image's 2D SCOORD coordinates; :func:`dicom_sr_problem` says, before inference, why no SR
can be written for a volume (or None).

Conventions: DICOM 2D SCOORD coordinates are ``(column, row)`` with ``(0, 0)`` the top-left
corner of the top-left pixel, i.e. pixel centres at ``index + 0.5``.
"""
import os
import os.path as osp
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from ..io.ct_volume import CTVolume

if TYPE_CHECKING:  # imported when writing only
    import pydicom

__all__ = ['read_source_series', 'frame_of_reference_uid', 'slice_images', 'image_points',
           'dicom_sr_problem', 'PLANE_TOLERANCE_MM']

#: Largest distance (mm) between an axial-grid slice and a source image's plane for the
#: slice to be drawn on that image.
PLANE_TOLERANCE_MM = 1e-3


def read_source_series(folder: str, series_uid: str) -> List['pydicom.Dataset']:
    """The headers (no pixel data) of one DICOM series' instances in a folder.

    Args:
        folder: the series folder (its files, not sub-folders, as the reader scans it).
        series_uid: SeriesInstanceUID to keep.

    Returns:
        The instances, ordered by InstanceNumber then file name;
        files that are not DICOM or belong to another series are skipped.

    Raises:
        ValueError: no instance of the series is found, or the instances disagree on the
            FrameOfReferenceUID or on the study.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    found = []
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if not osp.isfile(path):
            continue
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:  # no Part 10 preamble: GDCM reads such files too
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
                dataset.get('SeriesInstanceUID')
            except Exception:  # not DICOM at all: pydicom raises many types on garbage
                continue
        except (OSError, ValueError, EOFError):
            continue
        if dataset.get('SeriesInstanceUID') == series_uid and 'SOPInstanceUID' in dataset:
            found.append((int(dataset.get('InstanceNumber') or 0), name, dataset))
    if not found:
        raise ValueError(f'{folder}: no DICOM file of series {series_uid} found to reference')
    datasets = [item[2] for item in sorted(found, key=lambda item: item[:2])]
    frames = {str(ds.get('FrameOfReferenceUID') or '') for ds in datasets}
    if len(frames) > 1:
        raise ValueError(f'{folder}: series {series_uid} mixes FrameOfReferenceUIDs '
                         f"{', '.join(sorted(frames))}")
    studies = {ds.get('StudyInstanceUID') for ds in datasets}
    if len(studies) != 1 or None in studies:
        raise ValueError(f'{folder}: series {series_uid} has StudyInstanceUIDs {sorted(studies)}')
    return datasets


def frame_of_reference_uid(source: Sequence['pydicom.Dataset']) -> Optional[str]:
    """The series' FrameOfReferenceUID (0020,0052), or None where the files lack it."""
    return str(source[0].get('FrameOfReferenceUID') or '') or None


def _plane(dataset: 'pydicom.Dataset') -> Optional[tuple]:
    """``(position, row_cosines, column_cosines, normal, column_spacing, row_spacing)`` of an
    image, or None where its header lacks one of them."""
    try:
        position = np.array([float(v) for v in dataset.ImagePositionPatient])
        cosines = np.array([float(v) for v in dataset.ImageOrientationPatient])
        row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    along_row, along_column = cosines[:3], cosines[3:]
    return (position, along_row, along_column, np.cross(along_row, along_column),
            column_spacing, row_spacing)


def slice_images(volume: CTVolume, source: Sequence['pydicom.Dataset']
                 ) -> Dict[int, 'pydicom.Dataset']:
    """Axial-grid slice ``z`` -> the source image whose plane contains that slice.

    A slice lies on an image when three of its points (index ``(0, 0, z)``, ``(1, 0, z)``,
    ``(0, 1, z)``, mapped to patient coordinates) are within :data:`PLANE_TOLERANCE_MM` of
    the image's plane: every slice of a series stored axially (oblique or flipped too), none
    of a series stored in another orientation.
    """
    planes = [(ds, _plane(ds)) for ds in source]
    planes = [(ds, plane) for ds, plane in planes if plane is not None]
    found: Dict[int, 'pydicom.Dataset'] = {}
    if not planes:
        return found
    positions = np.stack([plane[0] for _, plane in planes])
    normals = np.stack([plane[3] for _, plane in planes])
    for z in range(volume.num_slices):
        points = volume.geometry.index_to_physical(
            np.array([[0, 0, z], [1, 0, z], [0, 1, z]], np.float64))  # (3, 3)
        # distance of each point to each plane: (images, 3)
        distance = np.abs(np.einsum('nd,npd->np', normals, points[None] - positions[:, None]))
        on_plane = np.flatnonzero((distance <= PLANE_TOLERANCE_MM).all(axis=1))
        if len(on_plane):
            found[z] = planes[int(on_plane[0])][0]
    return found


def image_points(dataset: 'pydicom.Dataset', points_lps: np.ndarray) -> np.ndarray:
    """``(n, 3)`` patient coordinates (LPS mm) on an image's plane -> ``(n, 2)`` SCOORD
    ``(column, row)`` coordinates of that image (module docstring)."""
    position, along_row, along_column, _, column_spacing, row_spacing = _plane(dataset)
    offset = np.asarray(points_lps, np.float64) - position
    return np.stack([offset @ along_row / column_spacing + 0.5,
                     offset @ along_column / row_spacing + 0.5], axis=1)


def dicom_sr_problem(volume: CTVolume) -> Optional[str]:
    """Why no DICOM SR can be written for a volume, or None when one can.

    An SR needs a DICOM series input whose instances can be read again, and either a
    FrameOfReferenceUID (for the 3D regions) or axial-grid slices that are source images
    (for the 2D ones). Cheap enough to call before inference (headers only).

    Returns:
        str | None: a one-line reason naming the input.
    """
    if volume.source_format != 'dicom':
        return (f'dicom-sr needs a DICOM series input, got {volume.source_format} '
                f'{volume.source_path}')
    try:
        source = read_source_series(volume.source_path, volume.dicom_series_uid)
    except (OSError, ValueError) as error:
        return str(error)
    if frame_of_reference_uid(source) is None and not slice_images(volume, source):
        return (f'{volume.source_path}: series {volume.dicom_series_uid} has no '
                'FrameOfReferenceUID (0020,0052) and is not stored as axial slices: the SR '
                'has neither 3D patient coordinates nor source images to draw on')
    return None

"""Reading a CT volume for whole-volume inference: SimpleITK, validation, axial orientation.

:func:`read_ct_volume` reads a NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``),
NRRD (``.nrrd``, ``.nhdr``) file or a DICOM series folder with SimpleITK only (DICOM rescale
slope/intercept are applied by SimpleITK, so values are HU), checks it, and reorients it to
a standard axial grid:

* **Orientation.** The volume is reoriented with :func:`SimpleITK.DICOMOrient` (axis
  permutations and flips only, no resampling) so that its index axes point
  ``x`` -> patient left, ``y`` -> posterior, ``z`` -> superior (``'LPS'``, the DICOM
  convention): the z index runs over axial slices, from inferior to superior. The original
  orientation code and direction are recorded in :attr:`CTVolume.original_geometry`, and a
  warning says when the volume was reoriented. An oblique direction (slice normal tilted off
  the z axis) is kept: slices are treated as axial and all physical coordinates use the true
  direction; a tilt above 1 degree is reported as a warning.
* **Checks** (each a one-line :class:`VolumeInputError` naming the file): the path exists;
  SimpleITK can read it; it is 3D with one real (not complex) component per voxel and at
  least ``min_slices`` slices (a 2D image, a single-slice volume, a 4D or RGB image are
  refused); its spacing is present in the file header (NIfTI ``pixdim``, MetaImage
  ``ElementSpacing``/``ElementSize``, NRRD ``spacings``/``space directions``, DICOM
  ``PixelSpacing`` and distinct
  ``ImagePositionPatient`` per slice, each offset along the slice normal: a sheared,
  gantry-tilted series is refused), finite, > 0 and within the plausible CT range of
  :mod:`mp3d_mmdet.utils.validation` (on the axial grid); no voxel is NaN or infinite (for
  NIfTI the stored values are read with nibabel, since ITK's reader turns NaN into 0).
  Intensities that are clearly not HU (no air below -500 HU, a value range under 100, or a
  99.5th percentile above 3000) only give a warning: a cropped or unusual scan can trip these
  rules.
* **Identity.** The patient, study and series fields and the display window of a DICOM
  series (its first file), or the description of a NIfTI header, are kept in
  :attr:`CTVolume.metadata` (:data:`IDENTITY_TAGS`).
* Warnings are returned in :attr:`CTVolume.warnings` (and recorded in the outputs), never
  printed here; ITK's own console warnings are switched off while reading.

The volume and its conventions: :mod:`.ct_volume`.
"""
import gzip
import os
import os.path as osp
import struct
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ...utils.validation import ct_spacing_problem
from .ct_volume import (STANDARD_ORIENTATION, SUPPORTED_FILE_SUFFIXES, CTVolume, VolumeGeometry,
                        VolumeInputError)

__all__ = ['IDENTITY_TAGS', 'read_ct_volume']

_OBLIQUE_WARN_DEG = 1.0
_NON_UNIFORM_SLICE_TOL = 0.01  # relative deviation of DICOM slice gaps that gets a warning
_SHEAR_TOL_MM, _SHEAR_TOL_REL = 0.01, 1e-3  # in-plane shift of a slice that is a shear
_HU_SAMPLE_VOXELS = 1_000_000
#: :attr:`CTVolume.metadata` key -> the image metadata key it is read from (DICOM tags as
#: SimpleITK/GDCM names them; multi-valued fields keep their first value).
IDENTITY_TAGS = {
    'PatientName': '0010|0010', 'PatientID': '0010|0020', 'PatientBirthDate': '0010|0030',
    'PatientSex': '0010|0040', 'StudyDate': '0008|0020', 'StudyDescription': '0008|1030',
    'AccessionNumber': '0008|0050', 'SeriesDescription': '0008|103e',
    'SeriesNumber': '0020|0011', 'Modality': '0008|0060', 'WindowCenter': '0028|1050',
    'WindowWidth': '0028|1051', 'Description': 'descrip'}


def _identity_metadata(get: Callable[[str], Optional[str]]) -> Dict[str, str]:
    """The non-empty :data:`IDENTITY_TAGS` fields; ``get(key)`` is a key's value or None."""
    found = {}
    for name, key in IDENTITY_TAGS.items():
        value = get(key)
        value = value.split('\\')[0].strip().strip('\0').strip() if value else ''
        if value:
            found[name] = value
    return found


def _format_of(path: str) -> str:
    name = path.lower()
    if name.endswith(('.nii', '.nii.gz')):
        return 'nifti'
    if name.endswith(('.mha', '.mhd')):
        return 'metaimage'
    if name.endswith(('.nrrd', '.nhdr')):
        return 'nrrd'
    return 'other'


def _sitk_message(error: Exception) -> str:
    """The informative line of an ITK exception (they span several lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if 'ITK ERROR' in line or 'Unable to determine ImageIO' in line:
            return line.split(': ', 2)[-1] if 'ITK ERROR' in line else line
    return lines[-1] if lines else type(error).__name__


def _nifti_header(path: str) -> Optional[bytes]:
    """The first 540 bytes of a NIfTI file (decompressed for ``.gz``), None if unreadable."""
    opener = gzip.open if path.lower().endswith('.gz') else open
    try:
        with opener(path, 'rb') as handle:
            return handle.read(540)
    except (OSError, EOFError):
        return None


def _nifti_header_pixdim(header: bytes) -> Optional[Tuple[float, float, float]]:
    """``pixdim[1..3]`` as written in a NIfTI-1/2 header, None if the header is not NIfTI."""
    for endian in ('<', '>'):
        if len(header) >= 348 and struct.unpack(endian + 'i', header[:4])[0] == 348:
            return struct.unpack(endian + '3f', header[80:92])  # float pixdim[8] at 76
        if len(header) >= 540 and struct.unpack(endian + 'i', header[:4])[0] == 540:
            return struct.unpack(endian + '3d', header[112:136])  # double pixdim[8] at 104
    return None


def _nifti1_expected_bytes(header: bytes) -> Optional[int]:
    """``vox_offset`` + voxel data bytes of a single-file NIfTI-1 image (None otherwise)."""
    for endian in ('<', '>'):
        if len(header) >= 348 and struct.unpack(endian + 'i', header[:4])[0] == 348:
            dims = struct.unpack(endian + '8h', header[40:56])
            bitpix = struct.unpack(endian + 'h', header[72:74])[0]
            vox_offset = struct.unpack(endian + 'f', header[108:112])[0]
            if not 1 <= dims[0] <= 7 or bitpix <= 0 or vox_offset < 348:
                return None
            return int(vox_offset) + int(np.prod(dims[1:dims[0] + 1], dtype=np.int64)) * \
                bitpix // 8
    return None


def _check_nifti_complete(path: str, header: bytes) -> None:
    """Raise if a NIfTI file holds less voxel data than its header announces (ITK would read
    the missing part as zeros without complaint)."""
    expected = _nifti1_expected_bytes(header)
    if expected is None:
        return
    if path.lower().endswith('.gz'):
        with open(path, 'rb') as handle:  # gzip trailer: uncompressed size mod 2^32
            handle.seek(-4, os.SEEK_END)
            trailer_size = struct.unpack('<I', handle.read(4))[0]
        if trailer_size == expected % 2**32:
            return
        actual = 0
        try:
            with gzip.open(path, 'rb') as handle:
                while True:
                    chunk = handle.read(1 << 24)
                    if not chunk:
                        break
                    actual += len(chunk)
        except (OSError, EOFError):
            pass  # truncated stream: ``actual`` holds what could be decompressed
    else:
        actual = osp.getsize(path)
    if actual < expected:
        raise VolumeInputError(f'{path}: truncated NIfTI file ({actual} bytes of header + voxel '
                               f'data, {expected} expected)')


def _text_header_keys(path: str, max_bytes: int = 65536) -> List[str]:
    """Lower-cased field names of a MetaImage / NRRD text header (up to the data)."""
    with open(path, 'rb') as handle:
        head = handle.read(max_bytes)
    keys = []
    for raw in head.split(b'\n'):
        line = raw.decode('latin-1').strip()
        if not line:
            break  # NRRD: blank line ends the header
        for separator in (':=', ':', '='):
            if separator in line:
                key = line.split(separator, 1)[0].strip().lower()
                keys.append(key)
                if key == 'elementdatafile':  # MetaImage: last header field
                    return keys
                break
    return keys


def _check_header(path: str, source_format: str) -> None:
    """Raise if the file header carries no voxel spacing (readers then silently use 1 mm), or
    a NIfTI file is truncated."""
    if source_format == 'nifti':
        header = _nifti_header(path) or b''
        pixdim = _nifti_header_pixdim(header)
        if pixdim is not None and not all(np.isfinite(p) and p > 0 for p in pixdim):
            raise VolumeInputError(f'{path}: missing, zero or negative voxel spacing in the NIfTI '
                                   f'header (pixdim[1:4] = {tuple(float(p) for p in pixdim)})')
        _check_nifti_complete(path, header)
    elif source_format == 'metaimage':
        keys = _text_header_keys(path)
        if 'elementspacing' not in keys and 'elementsize' not in keys:
            raise VolumeInputError(f'{path}: the MetaImage header has no ElementSpacing '
                                   '(voxel spacing missing)')
    elif source_format == 'nrrd':
        keys = _text_header_keys(path)
        if 'spacings' not in keys and 'space directions' not in keys:
            raise VolumeInputError(f'{path}: the NRRD header has neither "spacings" nor '
                                   '"space directions" (voxel spacing missing)')


def _read_file(path: str) -> Tuple[sitk.Image, str, List[str], Optional[str], Dict[str, str]]:
    source_format = _format_of(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise VolumeInputError(
            f'{path}: not an image SimpleITK can read ({_sitk_message(error)}); supported: '
            f"{', '.join(SUPPORTED_FILE_SUFFIXES)} files or a DICOM series folder") from None
    if reader.GetDimension() == 3 and reader.GetNumberOfComponents() == 1:
        _check_header(path, source_format)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise VolumeInputError(f'{path}: cannot read the image data '
                               f'({_sitk_message(error)})') from None
    metadata = _identity_metadata(
        lambda key: image.GetMetaData(key) if image.HasMetaDataKey(key) else None)
    return image, source_format, [], None, metadata


def _slice_normal(reader: sitk.ImageSeriesReader, first: str, image: sitk.Image) -> np.ndarray:
    """The unit slice normal of a DICOM series: the cross product of the two rows of the
    first file's ImageOrientationPatient (0020,0037) (the image's third direction column
    when the tag is missing or degenerate)."""
    if reader.HasMetaDataKey(0, '0020|0037'):
        try:
            values = [float(v) for v in reader.GetMetaData(0, '0020|0037').split('\\')]
        except ValueError:
            raise VolumeInputError(f'{first}: DICOM ImageOrientationPatient (0020,0037) is not '
                                   'six numbers') from None
        if len(values) == 6:
            normal = np.cross(values[:3], values[3:])
            if np.linalg.norm(normal) > 1e-6:
                return normal / np.linalg.norm(normal)
    return np.asarray(image.GetDirection(), np.float64).reshape(3, 3)[:, 2]


def _check_not_sheared(folder: str, positions: np.ndarray, normal: np.ndarray) -> None:
    """Refuse a series whose slices shift in-plane from one to the next (a gantry tilt):
    the offsets between successive ImagePositionPatient (in file order) must lie along the
    slice normal. Such a series has no voxel grid of the form origin + direction @ (index *
    spacing): every coordinate written for it would be wrong.

    Args:
        folder: the series folder, for the message.
        positions: ``(n, 3)`` ImagePositionPatient of the slices, in slice order.
        normal: ``(3,)`` unit slice normal.
    """
    offsets = np.diff(positions, axis=0)
    if not len(offsets):
        return
    along = offsets @ normal
    in_plane = offsets - along[:, None] * normal[None]
    shift = np.linalg.norm(in_plane, axis=1)
    worst = int(np.argmax(shift))
    if shift[worst] > _SHEAR_TOL_MM + _SHEAR_TOL_REL * abs(along[worst]):
        angle = float(np.degrees(np.arctan2(shift[worst], abs(along[worst]))))
        raise VolumeInputError(
            f'{folder}: sheared DICOM series (gantry tilt): slice {worst + 1} is shifted '
            f'{shift[worst]:.3g} mm in-plane from slice {worst} ({angle:.1f} degrees off the '
            'slice normal); its voxel coordinates cannot be written without resampling: '
            'resample it onto a regular grid first (e.g. 3D Slicer, dcm2niix, which corrects '
            'gantry tilt) and give the result')


def _read_dicom_series(folder: str
                       ) -> Tuple[sitk.Image, str, List[str], Optional[str], Dict[str, str]]:
    warnings: List[str] = []
    try:
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    except RuntimeError as error:
        raise VolumeInputError(f'{folder}: cannot scan the folder for DICOM files '
                               f'({_sitk_message(error)})') from None
    if not series_ids:
        raise VolumeInputError(f'{folder}: no DICOM series found in the folder (a folder is '
                               'read as a DICOM series; give a file path for NIfTI/MHA/NRRD)')
    files_of = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)
                for uid in series_ids}
    uid = max(series_ids, key=lambda s: (len(files_of[s]), s))
    if len(series_ids) > 1:
        others = ', '.join(f'{s} ({len(files_of[s])} files)' for s in series_ids if s != uid)
        warnings.append(f'{folder} holds {len(series_ids)} DICOM series; read the largest, '
                        f'{uid} ({len(files_of[uid])} files); ignored: {others}')
    files = files_of[uid]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise VolumeInputError(f'{folder}: cannot read DICOM series {uid} '
                               f'({_sitk_message(error)})') from None
    if image.GetDimension() == 3 and image.GetSize()[2] > 1:
        if not reader.HasMetaDataKey(0, '0028|0030'):
            raise VolumeInputError(f'{files[0]}: DICOM PixelSpacing (0028,0030) missing: '
                                   'in-plane spacing unknown')
        positions = []
        for i in range(len(files)):
            if not reader.HasMetaDataKey(i, '0020|0032'):
                raise VolumeInputError(f'{files[i]}: DICOM ImagePositionPatient (0020,0032) '
                                       'missing: slice spacing unknown')
            positions.append([float(v) for v in reader.GetMetaData(i, '0020|0032').split('\\')])
        normal = _slice_normal(reader, files[0], image)
        _check_not_sheared(folder, np.asarray(positions), normal)
        along = np.sort(np.asarray(positions) @ normal)
        gaps = np.diff(along)
        if gaps.size and float(np.max(np.abs(gaps))) < 1e-6:
            raise VolumeInputError(f'{folder}: all {len(files)} DICOM slices have the same '
                                   'ImagePositionPatient: slice spacing missing (zero)')
        if gaps.size and np.any(np.abs(gaps - np.median(gaps)) >
                                _NON_UNIFORM_SLICE_TOL * abs(np.median(gaps))):
            warnings.append(f'{folder}: non-uniform DICOM slice gaps {gaps.min():.3g}..'
                            f'{gaps.max():.3g} mm; the volume is treated as uniformly spaced '
                            f'at {image.GetSpacing()[2]:.4g} mm')
    if reader.HasMetaDataKey(0, '0008|0060'):
        modality = reader.GetMetaData(0, '0008|0060').strip()
        if modality and modality != 'CT':
            warnings.append(f'{folder}: DICOM modality is {modality!r}, not CT')
    metadata = _identity_metadata(
        lambda key: reader.GetMetaData(0, key) if reader.HasMetaDataKey(0, key) else None)
    return image, 'dicom', warnings, uid, metadata


def _check_finite(path: str, values: np.ndarray,
                  where: Callable[[Tuple[int, ...]], str]) -> None:
    """Raise if ``values`` holds NaN or infinite entries; ``where(index)`` words the position
    of the first one."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise VolumeInputError(f'{path}: {int(bad.sum())} voxels are NaN or infinite (the first '
                               f'at {where(first)}); CT values must be finite HU')


def _check_nifti_stored_values_finite(path: str) -> None:
    """Check the voxel values as stored in a NIfTI file (read with nibabel).

    ITK's NIfTI reader replaces NaN by 0 when it converts the stored data, so the image it
    returns cannot show them; the stored (unscaled) values of a floating-point file are read
    again here. Integer files cannot hold non-finite values and are not read twice.
    """
    import nibabel
    try:
        image = nibabel.load(path)
        if np.dtype(image.get_data_dtype()).kind not in 'fc':
            return
        stored = np.asarray(image.dataobj.get_unscaled())
    except Exception as error:  # nibabel raises several types for files ITK accepted
        raise VolumeInputError(f'{path}: cannot read the NIfTI voxel data to check it '
                               f'({type(error).__name__}: {error})') from None
    _check_finite(path, stored, lambda ijk: f'voxel {ijk} of the file as stored')


def hu_statistics(hu: np.ndarray) -> Dict[str, float]:
    step = max(1, int(np.ceil(hu.size / _HU_SAMPLE_VOXELS)))
    sample = hu.reshape(-1)[::step]
    p_low, p_mid, p_high = np.percentile(sample, [0.5, 50.0, 99.5])
    return {'min': float(hu.min()), 'max': float(hu.max()), 'p0.5': float(p_low),
            'p50': float(p_mid), 'p99.5': float(p_high)}


def hu_warnings(path: str, stats: Dict[str, float]) -> List[str]:
    messages = []
    if stats['p0.5'] > -500.0:
        messages.append(f'{path}: intensities may not be HU: no air found (0.5th percentile '
                        f"{stats['p0.5']:.0f} > -500; missing rescale slope/intercept, or a "
                        'volume cropped inside the body?)')
    if stats['p99.5'] - stats['p0.5'] < 100.0:
        messages.append(f'{path}: intensities may not be HU: 0.5-99.5th percentile range '
                        f"{stats['p0.5']:.4g}..{stats['p99.5']:.4g} is under 100 (normalised "
                        'data?)')
    if stats['p99.5'] > 3000.0:
        messages.append(f'{path}: intensities may not be HU: 99.5th percentile '
                        f"{stats['p99.5']:.0f} > 3000")
    return messages


def _as_hu_array(image: sitk.Image) -> np.ndarray:
    """``(Z, Y, X)`` array in int16 where lossless for integer data, else float32 (converted
    from a view of the image buffer: one copy of the volume is made, not two)."""
    view = sitk.GetArrayViewFromImage(image)
    if view.dtype in (np.int16, np.float32):
        return np.array(view)
    if np.issubdtype(view.dtype, np.integer) and view.size and \
            view.min() >= np.iinfo(np.int16).min and view.max() <= np.iinfo(np.int16).max:
        return view.astype(np.int16)
    return view.astype(np.float32)


def read_ct_volume(path: str, min_slices: int = 2,
                   orientation: str = STANDARD_ORIENTATION) -> CTVolume:
    """Read, check and reorient a CT volume (see the module docstring for every rule).

    Args:
        path: a ``.nii``/``.nii.gz``/``.mha``/``.mhd``/``.nrrd``/``.nhdr`` file (other
            3D formats SimpleITK reads are accepted too) or a folder holding a DICOM series
            (the largest series if there are several; recorded as a warning).
        min_slices: fewest axial slices accepted (>= 2; a single slice is a 2D image).
        orientation: DICOM orientation code of the processed grid; the default
            ``'LPS'`` makes ``hu[z]`` axial slices with z increasing towards the head.

    Returns:
        HU array ``(Z, Y, X)`` on the reoriented grid, both geometries, warnings.

    Raises:
        VolumeInputError: the path is missing or unreadable, not a single-channel 3D image,
            has fewer than ``min_slices`` slices, lacks a valid or plausible voxel spacing,
            or holds NaN or infinite values.
    """
    if min_slices < 2:
        raise ValueError(f'min_slices must be >= 2, got {min_slices}')
    if not osp.exists(path):
        raise VolumeInputError(f'{path}: no such file or directory')
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        if osp.isdir(path):
            image, source_format, warnings, uid, metadata = _read_dicom_series(path)
        else:
            image, source_format, warnings, uid, metadata = _read_file(path)
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)

    size = image.GetSize()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeInputError(f'{path}: {image.GetNumberOfComponentsPerPixel()} components '
                               'per voxel (colour/vector image); a single-channel CT volume '
                               'is needed')
    pixel_type = sitk.GetPixelIDValueAsString(image.GetPixelID())
    if 'complex' in pixel_type:
        raise VolumeInputError(f'{path}: {pixel_type} voxels; CT values are real numbers (HU)')
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and size[2] == 1):
        raise VolumeInputError(f'{path}: a 2D image ({size[0]} x {size[1]}); a 3D CT volume '
                               'is needed')
    if image.GetDimension() != 3:
        raise VolumeInputError(f'{path}: a {image.GetDimension()}D image of size {size}; a 3D '
                               'CT volume is needed')
    spacing = image.GetSpacing()
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise VolumeInputError(f'{path}: invalid voxel spacing {tuple(spacing)} (must be finite '
                               'and > 0 mm)')

    original = VolumeGeometry.of_image(image)
    reoriented = original.orientation != orientation
    if reoriented:
        image = sitk.DICOMOrient(image, orientation)
        warnings.append(f'{path}: reoriented from {original.orientation} to {orientation} '
                        '(axis permutation/flip, no resampling) so that slices are axial')
    geometry = VolumeGeometry.of_image(image)
    normal = geometry.direction_matrix[:, 2]
    tilt = float(np.degrees(np.arccos(np.clip(abs(normal[2]), 0.0, 1.0))))
    if tilt > _OBLIQUE_WARN_DEG:
        warnings.append(f'{path}: slices are oblique ({tilt:.1f} degrees off axial); treated as '
                        'axial slices, physical coordinates use the true direction')
    if geometry.size[2] < min_slices:
        raise VolumeInputError(f'{path}: {geometry.size[2]} axial slices; at least '
                               f'{min_slices} are needed')

    problem = ct_spacing_problem(geometry.spacing[:2], geometry.spacing[2])
    if problem:
        raise VolumeInputError(f'{path}: {problem}; voxel spacing {geometry.spacing} mm')

    if source_format == 'nifti':
        _check_nifti_stored_values_finite(path)
    hu = _as_hu_array(image)
    if hu.dtype.kind == 'f':
        _check_finite(path, hu, lambda zyx: f'slice {zyx[0]}, row {zyx[1]}, column {zyx[2]} '
                      f'of the {geometry.orientation} grid')
    stats = hu_statistics(hu)
    warnings.extend(hu_warnings(path, stats))
    return CTVolume(hu=hu, geometry=geometry, original_geometry=original,
                    source_path=os.fspath(path), source_format=source_format,
                    reoriented=reoriented, intensity_stats=stats, warnings=warnings,
                    dicom_series_uid=uid, metadata=metadata)

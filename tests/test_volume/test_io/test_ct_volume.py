"""Reading CT volumes: NIfTI / DICOM / MHA / NRRD round trips, reorientation, bad input."""
import gzip
import os
import struct

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from helpers.volume_fixtures import make_sitk_image, write_dicom_series
from mp3d_mmdet.volume import VolumeInputError, read_ct_volume

SPACING = (0.7, 0.8, 2.5)
ORIGIN = (-150.5, 20.25, 1200.0)
ROTATION = 0.25  # radians about z: a non-trivial (still axial, LPS-closest) direction
DIRECTION = (np.cos(ROTATION), -np.sin(ROTATION), 0.0, np.sin(ROTATION), np.cos(ROTATION), 0.0,
             0.0, 0.0, 1.0)


def _ct_array(shape=(5, 12, 10), seed=0):
    """(Z, Y, X) int16 HU with air, soft tissue and bone values."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1500, size=shape).astype(np.int16)


def _assert_geometry(volume, size, spacing, origin, direction):
    geometry = volume.geometry
    assert geometry.size == size
    assert geometry.spacing == pytest.approx(spacing, abs=1e-5)
    assert geometry.origin == pytest.approx(origin, abs=1e-4)
    assert geometry.direction == pytest.approx(direction, abs=1e-6)


@pytest.mark.parametrize('suffix', ['.nii.gz', '.nii', '.mha', '.nrrd'])
def test_file_round_trip_and_physical_coordinates(tmp_path, suffix):
    hu = _ct_array()
    image = make_sitk_image(hu, SPACING, ORIGIN, DIRECTION)
    path = str(tmp_path / f'ct{suffix}')
    sitk.WriteImage(image, path)
    volume = read_ct_volume(path)
    assert volume.source_format == {'.nii.gz': 'nifti', '.nii': 'nifti', '.mha': 'metaimage',
                                    '.nrrd': 'nrrd'}[suffix]
    assert volume.hu.dtype == np.int16 and volume.hu.shape == (5, 12, 10)
    np.testing.assert_array_equal(volume.hu, hu)
    _assert_geometry(volume, (10, 12, 5), SPACING, ORIGIN, DIRECTION)
    assert not volume.reoriented and volume.geometry.orientation == 'LPS'
    assert volume.warnings == []  # 14 degrees about z is not "oblique" (slice normal = z)
    # continuous index -> physical: same as SimpleITK's, and back
    points = np.array([[0.0, 0.0, 0.0], [3.5, 7.25, 2.0], [9.0, 11.0, 4.0]])
    physical = volume.geometry.index_to_physical(points)
    for point, mm in zip(points, physical):
        assert mm == pytest.approx(image.TransformContinuousIndexToPhysicalPoint(point.tolist()),
                                   abs=1e-4)
    np.testing.assert_allclose(volume.geometry.physical_to_index(physical), points, atol=1e-6)
    np.testing.assert_allclose(volume.to_original_index(points), points, atol=1e-6)
    assert volume.intensity_stats['min'] == hu.min() and volume.intensity_stats['max'] == hu.max()


def test_dicom_series_applies_rescale_and_keeps_geometry(tmp_path):
    hu = _ct_array(seed=1)
    image = make_sitk_image(hu, SPACING, ORIGIN, DIRECTION)
    files = write_dicom_series(image, str(tmp_path / 'series'), slope=1.0, intercept=-1024.0)
    # the files store HU + 1024 (what a scanner writes); the reader must return HU
    with open(files[0], 'rb') as handle:
        stored = np.frombuffer(handle.read()[-hu[0].nbytes:], '<u2').reshape(hu[0].shape)
    np.testing.assert_array_equal(stored.astype(np.int32), hu[0].astype(np.int32) + 1024)
    volume = read_ct_volume(str(tmp_path / 'series'))
    assert volume.source_format == 'dicom'
    assert volume.dicom_series_uid == '1.2.826.0.1.3680043.2.1125.1.1'
    np.testing.assert_array_equal(volume.hu, hu)
    assert volume.hu.dtype == np.int16
    _assert_geometry(volume, (10, 12, 5), SPACING, ORIGIN, DIRECTION)
    point = [4.0, 6.5, 3.0]
    assert volume.geometry.index_to_physical(np.array(point)) == pytest.approx(
        image.TransformContinuousIndexToPhysicalPoint(point), abs=1e-3)


def test_folder_with_two_dicom_series_reads_the_larger(tmp_path):
    folder = str(tmp_path / 'two')
    write_dicom_series(make_sitk_image(_ct_array(seed=5), SPACING, ORIGIN), folder)
    write_dicom_series(make_sitk_image(_ct_array(shape=(3, 12, 10), seed=6), SPACING, ORIGIN),
                       folder, series_number=2)
    volume = read_ct_volume(folder)
    assert volume.num_slices == 5
    assert volume.dicom_series_uid == '1.2.826.0.1.3680043.2.1125.1.1'
    np.testing.assert_array_equal(volume.hu, _ct_array(seed=5))
    assert volume.warnings == [
        f'{folder} holds 2 DICOM series; read the largest, 1.2.826.0.1.3680043.2.1125.1.1 '
        '(5 files); ignored: 1.2.826.0.1.3680043.2.1125.1.2 (3 files)']


def test_identity_metadata(tmp_path):
    """Patient, study, series and window fields of a DICOM series (first value of a
    multi-valued one), a NIfTI description, and nothing for a file without them."""
    image = make_sitk_image(_ct_array(seed=3), SPACING, ORIGIN)
    write_dicom_series(image, str(tmp_path / 'series'), extra_tags={
        '0010|0010': 'Doe^Jane', '0010|0020': 'P-042', '0008|0020': '20240131',
        '0008|1030': 'CT chest', '0008|103e': 'Axial 1.25', '0028|1050': '-600\\40',
        '0028|1051': '1500\\400'})
    metadata = read_ct_volume(str(tmp_path / 'series')).metadata
    assert metadata == dict(PatientName='Doe^Jane', PatientID='P-042', StudyDate='20240131',
                            StudyDescription='CT chest', SeriesDescription='Axial 1.25',
                            Modality='CT', WindowCenter='-600', WindowWidth='1500')
    sitk.WriteImage(image, str(tmp_path / 'described.nii.gz'))
    nifti = nibabel.load(str(tmp_path / 'described.nii.gz'))  # SimpleITK writes no descrip
    nifti.header['descrip'] = b'phantom scan'
    nibabel.save(nifti, str(tmp_path / 'described.nii.gz'))
    assert read_ct_volume(str(tmp_path / 'described.nii.gz')).metadata == dict(
        Description='phantom scan')
    sitk.WriteImage(image, str(tmp_path / 'plain.mha'))
    assert read_ct_volume(str(tmp_path / 'plain.mha')).metadata == {}


def test_dicom_slope_two_gives_hu(tmp_path):
    hu = (_ct_array(seed=2) // 2) * 2  # even values: exactly representable with slope 2
    image = make_sitk_image(hu, SPACING, ORIGIN)
    write_dicom_series(image, str(tmp_path / 'series'), slope=2.0, intercept=-1024.0)
    np.testing.assert_array_equal(read_ct_volume(str(tmp_path / 'series')).hu, hu)


def test_non_axial_volume_is_reoriented_and_recorded(tmp_path):
    # stored as RAS with permuted axes: index x runs posterior->anterior ... (orientation 'ASL')
    hu = _ct_array(shape=(4, 6, 8), seed=3)
    direction = (0.0, 0.0, -1.0,  # physical x <- -index z
                 -1.0, 0.0, 0.0,  # physical y <- -index x
                 0.0, 1.0, 0.0)  # physical z <- +index y
    image = make_sitk_image(hu, (0.9, 1.1, 3.0), ORIGIN, direction)
    path = str(tmp_path / 'sagittal.nii.gz')
    sitk.WriteImage(image, path)
    volume = read_ct_volume(path)
    assert volume.reoriented
    assert volume.original_geometry.orientation == 'ASR'
    assert volume.geometry.orientation == 'LPS'
    assert volume.geometry.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1), abs=1e-9)
    assert volume.warnings == [f'{path}: reoriented from ASR to LPS (axis permutation/flip, no '
                               'resampling) so that slices are axial']
    # axial grid: x <- stored z (flipped), y <- stored x (flipped), z <- stored y
    assert volume.hu.shape == (6, 8, 4)
    assert volume.spacing == pytest.approx((3.0, 0.9, 1.1))
    for z, y, x in [(0, 0, 0), (5, 7, 3), (2, 4, 1)]:
        stored_index = (7 - y, z, 3 - x)  # (i, j, k) in the file
        assert volume.hu[z, y, x] == hu[stored_index[2], stored_index[1], stored_index[0]]
        assert volume.to_original_index(np.array([x, y, z], float)) == pytest.approx(
            stored_index, abs=1e-6)
        assert volume.geometry.index_to_physical(np.array([x, y, z], float)) == pytest.approx(
            image.TransformIndexToPhysicalPoint(stored_index), abs=1e-6)


def test_oblique_and_non_hu_volumes_warn(tmp_path):
    tilt = np.radians(12.0)  # slices tilted 12 degrees about x
    direction = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), -np.sin(tilt), 0.0, np.sin(tilt),
                 np.cos(tilt))
    raw = (_ct_array(seed=4).astype(np.int32) + 1024).astype(np.float32)  # no air below -500
    path = str(tmp_path / 'raw.mha')
    sitk.WriteImage(make_sitk_image(raw, SPACING, ORIGIN, direction, sitk.sitkFloat32), path)
    volume = read_ct_volume(path)
    assert volume.hu.dtype == np.float32
    assert volume.warnings[0] == (f'{path}: slices are oblique (12.0 degrees off axial); treated '
                                  'as axial slices, physical coordinates use the true direction')
    assert volume.warnings[1].startswith(f'{path}: intensities may not be HU: no air found '
                                         '(0.5th percentile')
    normalised = str(tmp_path / 'normalised.nrrd')
    sitk.WriteImage(make_sitk_image(np.random.default_rng(0).random((4, 8, 8)), SPACING,
                                    dtype=sitk.sitkFloat32), normalised)
    warnings = read_ct_volume(normalised).warnings
    assert len(warnings) == 2 and 'percentile range 0.' in warnings[1] and 'under 100' in \
        warnings[1]


# ----------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path):
    with pytest.raises(VolumeInputError, match=r'missing\.nii\.gz: no such file or directory'):
        read_ct_volume(str(tmp_path / 'missing.nii.gz'))


def test_not_an_image(tmp_path):
    path = tmp_path / 'notes.nii.gz'
    path.write_text('not a volume')
    with pytest.raises(VolumeInputError, match=r'notes\.nii\.gz: not an image SimpleITK can '
                       r'read \(.*\); supported: \.nii, \.nii\.gz, \.mha'):
        read_ct_volume(str(path))


@pytest.mark.parametrize('name', ['cut.nii', 'cut.nii.gz'])
def test_truncated_nifti(tmp_path, name):
    # ITK reads the missing voxels as zeros without an error: the reader must catch it
    path = str(tmp_path / name)
    sitk.WriteImage(make_sitk_image(_ct_array(), SPACING), path)
    if name.endswith('.gz'):
        with gzip.open(path, 'rb') as handle:
            data = handle.read()
        assert len(data) == 352 + 5 * 12 * 10 * 2
        with gzip.open(path, 'wb') as handle:
            handle.write(data[:1000])
    else:
        with open(path, 'rb') as handle:
            data = handle.read()
        with open(path, 'wb') as handle:
            handle.write(data[:1000])
    with pytest.raises(VolumeInputError, match=name.replace('.', r'\.') + r': truncated NIfTI '
                       r'file \(1000 bytes of header \+ voxel data, 1552 expected\)'):
        read_ct_volume(path)


def test_2d_images(tmp_path):
    flat = str(tmp_path / 'slice.nrrd')
    sitk.WriteImage(sitk.GetImageFromArray(_ct_array()[0]), flat)
    with pytest.raises(VolumeInputError, match=r'slice\.nrrd: a 2D image \(10 x 12\); a 3D CT '
                       'volume is needed'):
        read_ct_volume(flat)
    single = str(tmp_path / 'single.nii.gz')
    sitk.WriteImage(make_sitk_image(_ct_array(shape=(1, 12, 10)), SPACING), single)
    with pytest.raises(VolumeInputError, match=r'single\.nii\.gz: a 2D image \(10 x 12\)'):
        read_ct_volume(single)


def test_too_few_slices_and_colour(tmp_path):
    path = str(tmp_path / 'two.mha')
    sitk.WriteImage(make_sitk_image(_ct_array(shape=(2, 12, 10)), SPACING), path)
    assert read_ct_volume(path).num_slices == 2
    with pytest.raises(VolumeInputError, match=r'two\.mha: 2 axial slices; at least 3 are '
                       'needed'):
        read_ct_volume(path, min_slices=3)
    rgb = str(tmp_path / 'rgb.mha')
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 8, 3), np.uint8), isVector=True), rgb)
    with pytest.raises(VolumeInputError, match=r'rgb\.mha: 3 components per voxel'):
        read_ct_volume(rgb)


def test_non_finite_values(tmp_path):
    hu = _ct_array().astype(np.float32)
    hu[3, 4, 5] = np.nan
    hu[4, 0, 0] = np.inf
    path = str(tmp_path / 'nan.mha')  # (NaN does not survive ITK's NIfTI round trip)
    sitk.WriteImage(sitk.GetImageFromArray(hu), path)  # identity direction: LPS, not reoriented
    with pytest.raises(VolumeInputError, match=r'nan\.mha: 2 voxels are NaN or infinite '
                       r'\(the first at slice 3, row 4, column 5 of the LPS grid\)'):
        read_ct_volume(path)


@pytest.mark.parametrize('suffix', ['.nii', '.nii.gz'])
def test_non_finite_values_in_nifti(tmp_path, suffix):
    import nibabel
    hu = _ct_array().astype(np.float32)  # (Z, Y, X)
    hu[2, 3, 4] = np.nan
    hu[4, 1, 1] = -np.inf
    path = str(tmp_path / f'nan{suffix}')
    # nibabel's array is indexed (i, j, k) = (x, y, z)
    nibabel.save(nibabel.Nifti1Image(hu.transpose(2, 1, 0), np.diag([0.7, 0.8, 2.5, 1.0])),
                 path)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(path))).all()  # ITK hides them
    with pytest.raises(VolumeInputError, match=rf'nan{suffix.replace(".", "[.]")}: 2 voxels are '
                       r'NaN or infinite \(the first at voxel \(1, 1, 4\) of the file as stored\)'):
        read_ct_volume(path)


def test_integer_nifti_is_not_read_twice(tmp_path, monkeypatch):
    import nibabel
    path = str(tmp_path / 'int.nii.gz')
    sitk.WriteImage(make_sitk_image(_ct_array(), SPACING), path)
    monkeypatch.setattr(nibabel.arrayproxy.ArrayProxy, 'get_unscaled',
                        lambda self: pytest.fail('integer data read again'))
    assert read_ct_volume(path).hu.dtype == np.int16


@pytest.mark.parametrize('spacing, message', [
    ((0.7, 0.7, 1e-6), 'slice interval 1e-06 mm is outside the plausible CT range'),
    ((0.7, 0.7, 1e9), 'slice interval 1000000000.0 mm is outside'),
    ((1e-4, 0.7, 2.5), r'pixel spacing \(x\) 0.0001 mm is outside'),
])
def test_implausible_spacing(tmp_path, spacing, message):
    path = str(tmp_path / 'odd.mha')
    sitk.WriteImage(make_sitk_image(_ct_array(), spacing), path)
    with pytest.raises(VolumeInputError, match=rf'odd\.mha: {message}'):
        read_ct_volume(path)


def _zero_nifti_pixdim(path):
    with gzip.open(path, 'rb') as handle:
        data = bytearray(handle.read())
    data[80:92] = struct.pack('<3f', 0.0, 0.0, 0.0)
    for offset in (252, 254):  # qform_code, sform_code = 0: no other source of spacing
        data[offset:offset + 2] = struct.pack('<h', 0)
    with gzip.open(path, 'wb') as handle:
        handle.write(bytes(data))


def test_missing_or_zero_spacing(tmp_path):
    nifti = str(tmp_path / 'nospacing.nii.gz')
    sitk.WriteImage(make_sitk_image(_ct_array(), SPACING), nifti)
    _zero_nifti_pixdim(nifti)
    with pytest.raises(VolumeInputError, match=r'nospacing\.nii\.gz: missing, zero or negative '
                       r'voxel spacing in the NIfTI header \(pixdim\[1:4\] = \(0\.0, 0\.0, '
                       r'0\.0\)\)'):
        read_ct_volume(nifti)

    mhd = str(tmp_path / 'nospacing.mhd')
    raw = tmp_path / 'nospacing.raw'
    raw.write_bytes(_ct_array().tobytes())
    with open(mhd, 'w') as handle:
        handle.write('ObjectType = Image\nNDims = 3\nDimSize = 10 12 5\nElementType = MET_SHORT\n'
                     'ElementDataFile = nospacing.raw\n')
    with pytest.raises(VolumeInputError, match=r'nospacing\.mhd: the MetaImage header has no '
                       'ElementSpacing'):
        read_ct_volume(mhd)

    nrrd = str(tmp_path / 'nospacing.nrrd')
    with open(nrrd, 'wb') as handle:
        handle.write(b'NRRD0004\ntype: short\ndimension: 3\nsizes: 10 12 5\nendian: little\n'
                     b'encoding: raw\n\n' + _ct_array().tobytes())
    with pytest.raises(VolumeInputError, match=r'nospacing\.nrrd: the NRRD header has neither '
                       '"spacings" nor "space directions"'):
        read_ct_volume(nrrd)

    zero = str(tmp_path / 'zero.mha')
    with open(zero, 'wb') as handle:
        handle.write(b'ObjectType = Image\nNDims = 3\nDimSize = 10 12 5\nElementSpacing = 0.7 0 '
                     b'2.5\nElementType = MET_SHORT\nElementDataFile = LOCAL\n'
                     + _ct_array().tobytes())
    with pytest.raises(VolumeInputError, match=r'zero\.mha: cannot read the image data '
                       r'\(Zero-valued spacing is not supported'):
        read_ct_volume(zero)


def test_dicom_without_spacing_or_positions(tmp_path):
    image = make_sitk_image(_ct_array(), SPACING, ORIGIN)
    write_dicom_series(image, str(tmp_path / 'nopixel'), pixel_spacing=False)
    with pytest.raises(VolumeInputError, match=r'IM0000\.dcm: DICOM PixelSpacing \(0028,0030\) '
                       'missing'):
        read_ct_volume(str(tmp_path / 'nopixel'))
    write_dicom_series(image, str(tmp_path / 'noposition'), positions=False)
    with pytest.raises(VolumeInputError, match=r'noposition: all 5 DICOM slices have the same '
                       'ImagePositionPatient: slice spacing missing'):
        read_ct_volume(str(tmp_path / 'noposition'))
    os.makedirs(tmp_path / 'empty')
    (tmp_path / 'empty' / 'readme.txt').write_text('no dicom here')
    with pytest.raises(VolumeInputError, match=r'empty: no DICOM series found in the folder'):
        read_ct_volume(str(tmp_path / 'empty'))


@pytest.mark.parametrize('shear_mm', [(0.9, 0.0, 0.0), (0.0, -0.45, 0.0)])
def test_gantry_tilted_dicom_series_is_refused(tmp_path, shear_mm):
    """Each slice shifted in-plane from the one before (a gantry tilt): no regular grid can
    hold it, so it is refused in one line instead of given wrong coordinates."""
    folder = str(tmp_path / 'tilted')
    write_dicom_series(make_sitk_image(_ct_array(seed=3), SPACING, ORIGIN), folder,
                       shear_mm=shear_mm)
    before = {name: open(os.path.join(folder, name), 'rb').read()
              for name in sorted(os.listdir(folder))}
    shift = np.linalg.norm(shear_mm)
    with pytest.raises(VolumeInputError) as error:
        read_ct_volume(folder)
    message = str(error.value)
    assert message.startswith(f'{folder}: sheared DICOM series (gantry tilt): slice ')
    assert f'shifted {shift:.3g} mm in-plane' in message
    assert f'({np.degrees(np.arctan2(shift, SPACING[2])):.1f} degrees' in message
    assert '\n' not in message
    assert {name: open(os.path.join(folder, name), 'rb').read()
            for name in sorted(os.listdir(folder))} == before


def test_dicom_series_in_an_oblique_frame_is_not_a_shear(tmp_path):
    """Offsets along a tilted slice normal (an oblique, unsheared series) are read."""
    folder = str(tmp_path / 'oblique')
    tilt = np.radians(10.0)
    direction = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), np.sin(tilt), 0.0, -np.sin(tilt),
                 np.cos(tilt))
    write_dicom_series(make_sitk_image(_ct_array(seed=4), SPACING, ORIGIN, direction), folder)
    volume = read_ct_volume(folder)
    _assert_geometry(volume, (10, 12, 5), SPACING, ORIGIN, direction)


def test_complex_nifti_is_refused_in_one_line(tmp_path):
    import nibabel
    data = (np.ones((10, 12, 5)) + 1j).astype(np.complex64)
    path = str(tmp_path / 'complex.nii.gz')
    nibabel.save(nibabel.Nifti1Image(data, np.diag([0.7, 0.8, 2.5, 1.0])), path)
    with pytest.raises(VolumeInputError) as error:
        read_ct_volume(path)
    assert str(error.value).startswith(f'{path}: ') and '\n' not in str(error.value)
    assert 'complex' in str(error.value)

"""DeepLesion sub-volumes: runs of consecutive slice files cut per series, named like the
LENS test set, read as CTVolumes with x = PNG column, y = PNG row, z = slice - first."""
import os
import os.path as osp

import numpy as np
import pytest

from helpers.deeplesion_files import HEIGHT, WIDTH, expected_hu, make_row, write_slices
from mp3d_mmdet.datasets.dl_info import write_dl_info
from mp3d_mmdet.volume import (CTVolume, VolumeInputError, list_deeplesion_subvolumes,
                               parse_subvolume_name, read_ct_volume, read_deeplesion_subvolume,
                               write_deeplesion_subvolume_nifti)


@pytest.fixture
def root(tmp_path):
    """Series 1 (train): files 001-005 and 008-010 (a gap), 0.7 x 0.8 x 2.5 mm, two rows.
    Series 2 (test): files 003-004 at 0.6 x 0.6 x 5 mm. Series 3: files, no csv row.
    Series 4 (val): a csv row, no folder."""
    rows = [make_row('000001_01_01', 3, (0.7, 0.8, 2.5), 1),
            make_row('000001_01_01', 9, (0.7, 0.8, 2.5), 1),
            make_row('000002_01_01', 4, (0.6, 0.6, 5.0), 3),
            make_row('000004_01_01', 2, (0.7, 0.7, 1.0), 2)]
    write_dl_info(str(tmp_path / 'DL_info.csv'), rows)
    write_slices(str(tmp_path), '000001_01_01', [1, 2, 3, 4, 5, 8, 9, 10])
    write_slices(str(tmp_path), '000002_01_01', [3, 4])
    write_slices(str(tmp_path), '000003_01_01', [1, 2])
    (tmp_path / 'Images_png' / '000001_01_01' / 'notes.txt').write_text('ignored')
    return str(tmp_path)


def test_runs_of_consecutive_slices_become_named_subvolumes(root):
    with pytest.warns(UserWarning) as caught:
        subvolumes = list_deeplesion_subvolumes(root)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert '1 series folder(s) have no row in' in messages[0] and '000003_01_01' in messages[0]
    assert '1 series of' in messages[1] and '000004_01_01' in messages[1]
    assert [s.name for s in subvolumes] == [
        '000001_01_01_001-005', '000001_01_01_008-010', '000002_01_01_003-004']
    first, second, third = subvolumes
    assert (first.first, first.last, first.num_slices) == (1, 5, 5)
    assert second.slice_numbers == [8, 9, 10]
    assert first.spacing_mm_xyz == (0.7, 0.8, 2.5) and third.spacing_mm_xyz == (0.6, 0.6, 5.0)
    assert first.split_codes == (1, ) and first.split_code == 1 and third.split_code == 3
    assert second.slice_paths(root)[0] == osp.join(root, 'Images_png', '000001_01_01',
                                                   '008.png')
    assert parse_subvolume_name('000001_01_01_103-115') == ('000001_01_01', 103, 115)


def test_split_keeps_the_series_with_rows_of_that_split(root):
    with pytest.warns(UserWarning):  # series 3 has no row
        test = list_deeplesion_subvolumes(root, 'test')
        train = list_deeplesion_subvolumes(root, split='train')
    assert [s.name for s in test] == ['000002_01_01_003-004']
    assert [s.name for s in train] == ['000001_01_01_001-005', '000001_01_01_008-010']
    with pytest.warns(UserWarning) as caught:
        assert list_deeplesion_subvolumes(root, 'val') == []
    assert any('1 val series of' in str(w.message) and '000004_01_01' in str(w.message)
               for w in caught)


def test_read_gives_the_voxel_indexing_and_spacing(root):
    with pytest.warns(UserWarning):
        subvolume = list_deeplesion_subvolumes(root)[1]  # 008-010
    volume = read_deeplesion_subvolume(subvolume, root)
    assert isinstance(volume, CTVolume)
    assert volume.hu.dtype == np.int16 and volume.hu.shape == (3, HEIGHT, WIDTH)
    for z in range(3):  # slice number = first + z; hu[z, y, x] = PNG row y, column x
        np.testing.assert_array_equal(volume.hu[z], expected_hu(8 + z))
    assert volume.hu[2, 5, 6] == -1000 + 100 * 10 + 10 * 5 + 6
    geometry = volume.geometry
    assert geometry.size == (WIDTH, HEIGHT, 3) and geometry.spacing == (0.7, 0.8, 2.5)
    assert geometry.origin == (0.0, 0.0, 20.0) and geometry.orientation == 'LPS'
    assert geometry.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert volume.original_geometry == geometry and volume.reoriented is False
    np.testing.assert_allclose(geometry.index_to_physical(np.array([2.0, 3.0, 1.0])),
                               [1.4, 2.4, 22.5])  # physical z = slice number * sz
    assert volume.spacing == (0.7, 0.8, 2.5) and volume.num_slices == 3
    assert volume.source_path == osp.join(root, 'Images_png', '000001_01_01')
    assert volume.source_format == 'deeplesion_png'
    # the checks of read_ct_volume apply: this test pattern has no air
    assert len(volume.warnings) == 1
    assert '(000001_01_01_008-010): intensities may not be HU: no air' in volume.warnings[0]
    assert volume.intensity_stats['min'] == -1000 + 800
    assert volume.intensity_stats['max'] == -1000 + 1000 + 56

    by_name = read_deeplesion_subvolume('000001_01_01_008-010', root)
    np.testing.assert_array_equal(by_name.hu, volume.hu)
    assert by_name.geometry == geometry
    part = read_deeplesion_subvolume('000001_01_01_002-003', root)  # any existing range
    np.testing.assert_array_equal(part.hu[1], expected_hu(3))
    single = read_deeplesion_subvolume('000002_01_01_004-004', root)
    assert single.hu.shape == (1, HEIGHT, WIDTH)  # a one-slice run is a volume too
    np.testing.assert_array_equal(single.hu[0], expected_hu(4))


def test_nifti_copy_reads_back_on_the_same_grid(root, tmp_path):
    path = str(tmp_path / 'sub.nii.gz')
    assert write_deeplesion_subvolume_nifti('000001_01_01_001-005', root, path) == path
    original = read_deeplesion_subvolume('000001_01_01_001-005', root)
    copy = read_ct_volume(path)  # the path of any other volume
    np.testing.assert_array_equal(copy.hu, original.hu)
    assert copy.reoriented is False and copy.geometry.orientation == 'LPS'
    np.testing.assert_allclose(copy.spacing, (0.7, 0.8, 2.5), rtol=1e-6)
    np.testing.assert_allclose(copy.geometry.origin, (0.0, 0.0, 2.5), atol=1e-6)
    assert [p for p in os.listdir(tmp_path) if p.endswith('.partial.nii.gz')] == []


def test_missing_paths_and_bad_names_are_one_line_errors(root, tmp_path):
    cases = [
        (str(tmp_path / 'nowhere'), FileNotFoundError, 'DeepLesion root folder not found: '),
    ]
    for where, kind, pattern in cases:
        with pytest.raises(kind, match=pattern):
            list_deeplesion_subvolumes(where)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        list_deeplesion_subvolumes(str(empty))
    assert str(info.value) == f"DeepLesion annotation file not found: {empty / 'DL_info.csv'}"
    (empty / 'DL_info.csv').write_text('x')
    with pytest.raises(FileNotFoundError) as info:
        read_deeplesion_subvolume('000001_01_01_001-002', str(empty))
    assert str(info.value) == f"DeepLesion image folder not found: {empty / 'Images_png'}"
    with pytest.raises(ValueError, match="split must be one of"):
        list_deeplesion_subvolumes(root, 'testing')
    with pytest.raises(ValueError, match="'000001_01_01_9-3' is not a DeepLesion sub-volume"):
        read_deeplesion_subvolume('000001_01_01_9-3', root)
    with pytest.raises(ValueError, match='series 000003_01_01 has no row in'):
        read_deeplesion_subvolume('000003_01_01_001-002', root)
    missing = osp.join(root, 'Images_png', '000001_01_01', '006.png')
    with pytest.raises(FileNotFoundError, match=f'CT slice file not found: {missing}'):
        read_deeplesion_subvolume('000001_01_01_004-008', root)


def test_inconsistent_series_spacing_and_slice_sizes_are_refused(tmp_path):
    rows = [make_row('000001_01_01', 1, (0.7, 0.7, 2.5), 3),
            make_row('000001_01_01', 2, (0.7, 0.7, 5.0), 3)]
    write_dl_info(str(tmp_path / 'DL_info.csv'), rows)
    write_slices(str(tmp_path), '000001_01_01', [1, 2])
    with pytest.raises(ValueError) as info:
        list_deeplesion_subvolumes(str(tmp_path))
    message = str(info.value)
    assert "row 3, column 'Spacing_mm_px_'" in message and 'in row 2' in message
    assert '\n' not in message

    write_dl_info(str(tmp_path / 'DL_info.csv'), rows[:1])
    write_slices(str(tmp_path), '000001_01_01', [2], rows=HEIGHT + 1)
    with pytest.raises(VolumeInputError, match='002.png: 7 x 7 px, but .*001.png is 7 x 6 px'):
        read_deeplesion_subvolume('000001_01_01_001-002', str(tmp_path))

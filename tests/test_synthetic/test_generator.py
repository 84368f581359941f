"""make_synthetic_deeplesion: the folder it writes, its summary, determinism, bad arguments."""
import csv
import os
import os.path as osp

import pytest

from mp3d_mmdet.datasets.dl_info import DL_INFO_COLUMNS
from mp3d_mmdet.synthetic import make_synthetic_deeplesion


def test_layout_and_all_18_columns(generated):
    root, summary, rows = generated
    assert sorted(os.listdir(root)) == ['DL_info.csv', 'Images_png', 'lesions_3d.pkl',
                                        'synthetic_recipe.json']
    with open(osp.join(root, 'DL_info.csv'), newline='') as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == DL_INFO_COLUMNS
    assert len(rows) == summary['num_lesions']
    assert [r.file_name for r in rows] == sorted(r.file_name for r in rows)
    for row in rows:
        folder = osp.join(root, 'Images_png', row.series_folder)
        assert row.file_name == f'{row.series_folder}_{row.key_slice_index:03d}.png'
        assert row.series_folder == (f'{row.patient_index:06d}_{row.study_index:02d}_'
                                     f'{row.series_id:02d}')
        first, last = row.slice_range
        for index in range(first, last + 1):  # the whole Slice_range is stored
            assert osp.isfile(osp.join(folder, f'{index:03d}.png'))
        assert row.spacing_mm_px[0] == row.spacing_mm_px[1]
        assert row.image_size[0] == row.image_size[1]
        assert row.patient_gender in ('M', 'F') and 20 <= row.patient_age <= 85
        assert all(0.0 <= v <= 1.0 for v in row.normalized_lesion_location)
    stored = sum(len(files) for _, _, files in os.walk(osp.join(root, 'Images_png')))
    assert stored == summary['num_png_files']


def test_only_the_windows_around_key_slices_are_stored(generated):
    root, _, rows = generated
    for folder in {r.series_folder for r in rows}:
        windows = {r.slice_range for r in rows if r.series_folder == folder}
        expected = {f'{i:03d}.png' for lo, hi in windows for i in range(lo, hi + 1)}
        assert set(os.listdir(osp.join(root, 'Images_png', folder))) == expected


def test_deterministic_bytes_for_a_seed(tmp_path):
    kwargs = dict(num_patients=3, seed=7, image_size=48, progress=False)
    first = make_synthetic_deeplesion(str(tmp_path / 'a'), **kwargs)
    second = make_synthetic_deeplesion(str(tmp_path / 'b'), **kwargs)
    make_synthetic_deeplesion(str(tmp_path / 'c'), **dict(kwargs, seed=8))
    paths = ('csv_path', 'images_dir', 'lesions_3d_path')
    assert {k: v for k, v in first.items() if k not in paths} == {
        k: v for k, v in second.items() if k not in paths}

    def files(root):
        found = {}
        for folder, _, names in os.walk(root):
            for name in names:
                with open(osp.join(folder, name), 'rb') as handle:
                    found[osp.relpath(osp.join(folder, name), root)] = handle.read()
        return found

    assert files(str(tmp_path / 'a')) == files(str(tmp_path / 'b'))
    assert files(str(tmp_path / 'a')) != files(str(tmp_path / 'c'))


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(num_patients=2), ValueError, r'num_patients must be >= 3'),
    (dict(image_size=16), ValueError, r'image_size must be >= 32'),
    (dict(lesions_per_series=(0, 2)), ValueError, r'lesions_per_series'),
    (dict(lesion_diameter_mm=(10.0, 5.0)), ValueError, r'lesion_diameter_mm'),
    (dict(noisy_fraction=1.5), ValueError, r'noisy_fraction'),
    (dict(vessels_per_series=(3, 2)), ValueError, r'vessels_per_series'),
    (dict(vessels_per_series=(-1, 2)), ValueError, r'vessels_per_series'),
    (dict(vessel_max_diameter_mm=0.0), ValueError, r'vessel_max_diameter_mm'),
])
def test_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        make_synthetic_deeplesion(str(tmp_path), **dict(dict(num_patients=3), **kwargs))


def test_refuses_to_overwrite(generated):
    root, _, _ = generated
    with pytest.raises(FileExistsError, match='DL_info.csv already exists'):
        make_synthetic_deeplesion(root, num_patients=3, progress=False)

"""The synthetic DeepLesion-format generator: layout, csv contents, anatomy, lesions vs vessels,
determinism."""
import csv
import math
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mp3d_mmdet.datasets import make_synthetic_deeplesion
from mp3d_mmdet.datasets.dl_info import DL_INFO_COLUMNS, read_dl_info
from mp3d_mmdet.datasets.transforms import read_uint16_png


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    summary = make_synthetic_deeplesion(root, num_patients=6, seed=11, image_size=96,
                                        progress=False)
    return root, summary, read_dl_info(osp.join(root, 'DL_info.csv'))


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


def test_series_mix_and_special_cases(generated):
    _, summary, rows = generated
    assert {r.spacing_mm_px[2] for r in rows} == {1.0, 2.5, 5.0}
    assert summary['series_per_slice_interval'][1.0] >= 1
    assert {r.image_size for r in rows} == {(96, 96), (144, 144)}
    assert {r.series_folder for r in rows if r.image_size == (144, 144)} == {
        summary['large_series']}
    assert summary['num_noisy_rows'] == sum(r.possibly_noisy for r in rows) >= 1
    assert len(summary['multi_lesion_key_slices']) >= 1
    for code, name in ((1, 'train'), (2, 'val'), (3, 'test')):
        split_rows = [r for r in rows if r.train_val_test == code]
        assert summary['splits'][name]['lesions'] == len(split_rows) > 0
        assert summary['splits'][name]['patients'] == len({r.patient_index for r in split_rows})
    # one split per patient; lesion types unknown in train as in the release
    for patient in {r.patient_index for r in rows}:
        assert len({r.train_val_test for r in rows if r.patient_index == patient}) == 1
    assert {r.coarse_lesion_type for r in rows if r.train_val_test == 1} == {-1}
    assert all(1 <= r.coarse_lesion_type <= 8 for r in rows if r.train_val_test != 1)


def test_recist_box_and_diameters_are_consistent(generated):
    _, _, rows = generated
    for row in rows:
        m = np.array(row.measurement_coordinates).reshape(4, 2)
        long_axis = np.linalg.norm(m[1] - m[0])
        short_axis = np.linalg.norm(m[3] - m[2])
        np.testing.assert_allclose(row.lesion_diameters_pixel, (long_axis, short_axis),
                                   rtol=1e-4)
        assert long_axis >= short_axis
        x1, y1, x2, y2 = row.bounding_box
        assert x1 <= m[:, 0].min() and m[:, 0].max() <= x2
        assert y1 <= m[:, 1].min() and m[:, 1].max() <= y2
        assert 1.0 <= x1 and x2 <= row.image_size[0] and 1.0 <= y1 and y2 <= row.image_size[1]
        spacing = row.spacing_mm_px[0]
        assert 5.0 - 1e-3 <= long_axis * spacing <= 40.0 + 1e-3


def test_realistic_hu_background(generated):
    root, _, rows = generated
    row = rows[0]
    hu = read_uint16_png(osp.join(root, 'Images_png', row.series_folder,
                                  f'{row.key_slice_index:03d}.png')).astype(np.float64) - 32768
    assert np.median(hu[:3, :3]) < -950  # air in the corner
    size = row.image_size[0]
    centre = hu[size // 2 - 3:size // 2 + 3, size // 2 - 3:size // 2 + 3]
    assert -900 < np.median(centre) < 300  # inside the body (soft tissue, or lung)
    assert ((hu > -150) & (hu < -50)).mean() > 0.01  # subcutaneous fat
    # bone: vertebral bodies (a key slice may fall on an 80 HU disc, so look at all of them)
    assert max(
        read_uint16_png(osp.join(root, 'Images_png', r.series_folder,
                                 f'{r.key_slice_index:03d}.png')).max() - 32768
        for r in rows) > 400


def key_slice_contrast(root, row, index):
    """Mean HU inside the lesion's short-axis disc minus its surroundings at slice ``index``."""
    path = osp.join(root, 'Images_png', row.series_folder, f'{index:03d}.png')
    hu = read_uint16_png(path).astype(np.float64) - 32768
    m = np.array(row.measurement_coordinates).reshape(4, 2) - 1.0
    centre = m[:2].mean(axis=0)
    radius = row.lesion_diameters_pixel[1] / 2
    ys, xs = np.mgrid[:hu.shape[0], :hu.shape[1]]
    distance = np.hypot(xs - centre[0], ys - centre[1])
    inside = distance <= max(radius * 0.5, 1.0)
    ring = (distance >= radius * 1.3 + 2) & (distance <= radius * 1.3 + 4)
    return hu[inside].mean() - np.median(hu[ring])


def test_lesions_are_3d_blobs_that_fade_along_z(tmp_path):
    root = str(tmp_path / 'big')
    make_synthetic_deeplesion(root, num_patients=3, seed=5, image_size=192,
                              lesion_diameter_mm=(20.0, 30.0), progress=False)
    checked = 0
    rows = read_dl_info(osp.join(root, 'DL_info.csv'))
    for row in rows:
        at_key = key_slice_contrast(root, row, row.key_slice_index)
        assert abs(at_key) > 15  # visible on the key slice
        # the ellipsoid (z semi-axis <= 0.55 x long diameter, soft edge <= 2 mm) is gone at the
        # stored slice farthest from the key slice, if that one is far enough
        interval = row.spacing_mm_px[2]
        long_mm, short_mm = (d * row.spacing_mm_px[0] for d in row.lesion_diameters_pixel)
        reach_mm = 0.55 * long_mm * (1.0 + 2.0 / (short_mm / 2.0)) + 1.0
        far = max(row.slice_range, key=lambda i: abs(i - row.key_slice_index))
        if abs(far - row.key_slice_index) * interval > reach_mm:
            checked += 1
            assert abs(key_slice_contrast(root, row, far)) < abs(at_key) / 2
    assert checked >= 1


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


def test_png_files_are_16_bit_with_the_hu_offset(generated):
    root, _, rows = generated
    image = cv2.imread(osp.join(root, 'Images_png', rows[0].series_folder,
                                f'{rows[0].key_slice_index:03d}.png'), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.ndim == 2
    assert 32768 - 1100 < int(np.median(image)) < 32768 + 200


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


def test_vessels_look_like_lesions_in_a_slice_but_run_through_every_slice():
    from mp3d_mmdet.datasets.synthetic_deeplesion import _make_series  # the generator's internals

    rng = np.random.default_rng(0)
    series = _make_series(rng, 1, 1, 1, 256, 2.5, 2, False, (15.0, 30.0))
    assert len(series.vessels) >= 2
    blobs = series.vessels + [lesion.blob for lesion in series.lesions]

    def contrast(blob, z):
        """HU at the blob's centre minus HU 3 radii away (noise-free rendering)."""
        section = blob.cross_section(z)
        assert section is not None
        ellipse, _ = section
        hu = series.phantom.render(z, blobs, np.random.default_rng(1)) - series.phantom.render(
            z, [], np.random.default_rng(1))
        row, col = int(round(ellipse.cy / series.spacing)), int(round(ellipse.cx /
                                                                      series.spacing))
        return hu[row, col]

    for lesion in series.lesions:
        z = lesion.blob.cz
        assert abs(contrast(lesion.blob, z)) > 20
        assert lesion.blob.cross_section(z + lesion.blob.semi_z + 3.0) is None  # a 3D blob
    for vessel in series.vessels:
        for z in (0.0, series.z_of(series.num_slices) / 2, series.z_of(series.num_slices)):
            assert abs(contrast(vessel, z)) > 20  # present at both ends of the series
        # same in-plane shape family as the lesions
        assert 15.0 / 2 * 0.55 - 1e-9 <= vessel.semi_y <= vessel.semi_x <= 30.0 / 2 + 1e-9
        assert vessel.edge_mm == pytest.approx(vessel.edge_mm) and 0.8 <= vessel.edge_mm <= 2.0


@pytest.mark.parametrize('vessels,cap', [((0, 0), None), ((5, 5), None), ((3, 6), 20.0)])
def test_vessel_count_and_size_options(vessels, cap):
    from mp3d_mmdet.datasets.synthetic_deeplesion import _make_series  # the generator's internals

    for seed in range(4):
        series = _make_series(np.random.default_rng(seed), 1, 1, 1, 256, 2.5, 1, False,
                              (15.0, 30.0), vessels_per_series=vessels,
                              vessel_max_diameter_mm=cap)
        # a vessel is only ever removed (out of a lesion's way), never added
        assert len(series.vessels) <= vessels[1]
        for vessel in series.vessels:
            assert vessel.semi_x <= (30.0 if cap is None else cap) / 2 + 1e-9
        lesion = series.lesions[0].blob
        for vessel in series.vessels:  # no vessel overlaps the lesion on its key slice
            section, _ = vessel.cross_section(lesion.cz)
            assert math.hypot(section.cx - lesion.cx, section.cy - lesion.cy) > (
                lesion.semi_x + vessel.semi_x)
    if vessels == (5, 5):
        assert len(series.vessels) >= 3  # crowding removes few


def test_crowded_series_keep_their_lesions():
    """Many large vessels thin out in the lesions' way instead of failing the generator."""
    from mp3d_mmdet.datasets.synthetic_deeplesion import _make_series  # the generator's internals

    kept = []
    for seed in range(6):
        series = _make_series(np.random.default_rng(seed), 1, 1, 1, 128, 5.0, 3, False,
                              (30.0, 45.0), vessels_per_series=(8, 8))
        assert len(series.lesions) == 3
        kept.append(len(series.vessels))
    assert min(kept) < 8  # the crowding did happen


def test_3d_ground_truth_of_every_sub_volume(generated):
    """lesions_3d.pkl: one entry per run of stored slices, each lesion's 3D box around its
    key-slice box and through its key slice, vessels left out."""
    from mp3d_mmdet.datasets.dl_info import consecutive_runs, subvolume_name
    from mp3d_mmdet.datasets.lesions_3d import read_lens_annotations
    from mp3d_mmdet.structures import box_iou

    root, summary, rows = generated
    truth = {split: read_lens_annotations(summary['lesions_3d_path'], split).boxes
             for split in ('train', 'val', 'test')}
    expected_names = {}
    for series in sorted({r.series_folder for r in rows}):
        stored = [int(f[:-4]) for f in os.listdir(osp.join(root, 'Images_png', series))]
        split = {1: 'train', 2: 'val', 3: 'test'}[
            next(r.train_val_test for r in rows if r.series_folder == series)]
        for first, last in consecutive_runs(stored):
            expected_names[subvolume_name(series, first, last)] = split
    assert {name: split for split, boxes in truth.items() for name in boxes} == expected_names
    assert summary['num_subvolumes'] == len(expected_names)
    for row in rows:  # every annotated lesion has a 3D box through its key slice
        split = {1: 'train', 2: 'val', 3: 'test'}[row.train_val_test]
        name = next(n for n in truth[split] if n.startswith(row.series_folder + '_')
                    and int(n[-7:-4]) <= row.key_slice_index <= int(n[-3:]))
        boxes = truth[split][name]
        through = boxes[(boxes[:, 2] <= row.key_slice_index)
                        & (row.key_slice_index <= boxes[:, 5])]
        x1, y1, x2, y2 = np.array(row.bounding_box) - 1.0  # 0-based key-slice box
        centres = (through[:, [0, 1]] + through[:, [3, 4]]) / 2
        assert ((x1 <= centres[:, 0]) & (centres[:, 0] <= x2)
                & (y1 <= centres[:, 1]) & (centres[:, 1] <= y2)).any()
        assert box_iou(through[:, [0, 1, 3, 4]], np.array([[x1, y1, x2, y2]]),
                       legacy_plus_one=True).max() > 0.25
    # lesions only: at most one box per lesion of the series in each sub-volume
    lesions_per_series = {}
    for row in rows:
        lesions_per_series[row.series_folder] = lesions_per_series.get(row.series_folder, 0) + 1
    for split, boxes in truth.items():
        for name, b in boxes.items():
            assert len(b) <= lesions_per_series[name[:12]]

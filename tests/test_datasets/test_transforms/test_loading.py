"""LoadCTSlices on hand-made series of constant-valued 16-bit PNG slices."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mp3d_mmdet.datasets import LoadCTSlices, is_channel_planar, sample_slices_from_volume
from mp3d_mmdet.datasets.transforms import loading
from mmdet.registry import TRANSFORMS


def scaled(hu):
    return (np.clip(hu, -1024.0, 1050.0) + 1024.0) * 255.0 / 2074.0


def write_series(folder, hu_by_index, shape=(8, 10)):
    """One PNG per index, every pixel = HU + 32768."""
    os.makedirs(folder, exist_ok=True)
    for index, hu in hu_by_index.items():
        values = np.full(shape, hu + 32768, np.uint16)
        cv2.imwrite(osp.join(folder, f'{index:03d}.png'), values)
    return str(folder)


def results_for(folder, key, interval):
    return dict(img_path=osp.join(folder, f'{key:03d}.png'), series_dir=folder, key_slice=key,
                slice_interval=interval, instances=[dict(csv_row=7)])


def test_exact_interpolation_and_outputs(tmp_path):
    # 2 mm slices valued 10 * index HU; 5 channels at 2.5 mm around key 20: offsets -5, -2.5,
    # 0, 2.5, 5 mm = -2.5, -1.25, 0, 1.25, 2.5 slices -> indices 17.5, 18.75, 20, 21.25, 22.5
    folder = write_series(tmp_path / 's', {i: 10 * i for i in range(14, 27)})
    out = LoadCTSlices(num_slices=5, slice_interval=2.5)(results_for(folder, 20, 2.0))
    img = out['img']
    assert img.shape == (8, 10, 5) and img.dtype == np.float32
    assert out['img_shape'] == (8, 10) and out['ori_shape'] == (8, 10)
    expected_hu = [175.0, 187.5, 200.0, 212.5, 225.0]
    np.testing.assert_allclose(img[3, 4], scaled(np.array(expected_hu)), rtol=1e-6)
    assert out['img_path'] == osp.join(folder, '020.png')
    assert out['slice_paths'][0] == (osp.join(folder, '017.png'), osp.join(folder, '018.png'))
    assert out['slice_paths'][2] == (osp.join(folder, '020.png'), ) * 2
    np.testing.assert_allclose(out['slice_weights'], [0.5, 0.75, 0.0, 0.25, 0.5])
    assert out['slice_order_flipped'] is False


def test_the_issue_example_100_and_200(tmp_path):
    # key slice (index 1, z = 1 mm, 100 HU), next slice (index 2, z = 5 mm, 200 HU): the
    # neighbour at +2.5 mm (z = 3.5 mm) is 0.375 * 100 + 0.625 * 200 = 162.5 HU; the one at
    # -2.5 mm (z = -1.5 mm, between index 0 at -3 mm, 0 HU, and the key) 0.625 * 0 + 0.375 * 100
    folder = write_series(tmp_path / 's', {0: 0, 1: 100, 2: 200})
    out = LoadCTSlices(num_slices=3, slice_interval=2.5)(results_for(folder, 1, 4.0))
    np.testing.assert_allclose(out['img'][0, 0], scaled(np.array([37.5, 100.0, 162.5])),
                               rtol=1e-6)


def test_missing_neighbours_fall_back_towards_the_key(tmp_path):
    # 1 mm slices; only 8..12 stored around key 10 (a Slice_range window) and 9 missing
    folder = write_series(tmp_path / 's', {8: -100, 10: 0, 11: 100, 12: 200})
    out = LoadCTSlices(num_slices=5, slice_interval=2.5)(results_for(folder, 10, 1.0))
    # positions 5, 7.5, 10, 12.5, 15 -> 8 (below: nearest between 5 and 10), 8 (7 -> 8, 8),
    # key, 12 (13 -> 12), 12
    np.testing.assert_allclose(out['img'][0, 0], scaled(np.array([-100.0, -100, 0, 200, 200])),
                               rtol=1e-6)
    assert out['slice_paths'][1] == (osp.join(folder, '008.png'), ) * 2
    os.remove(osp.join(folder, '008.png'))  # now everything below the key falls back to it
    out = LoadCTSlices(num_slices=5, slice_interval=2.5)(results_for(folder, 10, 1.0))
    np.testing.assert_allclose(out['img'][0, 0], scaled(np.array([0.0, 0, 0, 200, 200])),
                               rtol=1e-6)


def test_hu_window_clips_and_scales(tmp_path):
    folder = write_series(tmp_path / 's', {4: -3000, 5: 1050, 6: 3000})
    out = LoadCTSlices(num_slices=3, slice_interval=1.0)(results_for(folder, 5, 1.0))
    np.testing.assert_array_equal(out['img'][0, 0], [0.0, 255.0, 255.0])
    out = LoadCTSlices(num_slices=3, slice_interval=1.0, hu_window=(-1000, 1000),
                       out_range=(0.0, 1.0))(results_for(folder, 5, 1.0))
    np.testing.assert_array_equal(out['img'][0, 0], [0.0, 1.0, 1.0])


def test_each_png_is_decoded_once(tmp_path, monkeypatch):
    folder = write_series(tmp_path / 's', {i: i for i in range(0, 31)})
    decoded = []
    imread = cv2.imread

    def counting_imread(path, flags):
        decoded.append(osp.basename(path))
        return imread(path, flags)

    monkeypatch.setattr(loading.cv2, 'imread', counting_imread)
    LoadCTSlices(num_slices=9, slice_interval=2.5)(results_for(folder, 15, 1.0))
    assert sorted(decoded) == [f'{i:03d}.png' for i in
                               (5, 7, 8, 10, 12, 13, 15, 17, 18, 20, 22, 23, 25)]


def test_flip_slice_order(tmp_path):
    folder = write_series(tmp_path / 's', {i: 10 * i for i in range(0, 9)})
    out = LoadCTSlices(num_slices=5, slice_interval=1.0,
                       flip_slice_order_prob=1.0)(results_for(folder, 4, 1.0))
    np.testing.assert_allclose(out['img'][0, 0], scaled(np.array([60.0, 50, 40, 30, 20])),
                               rtol=1e-6)
    assert out['slice_order_flipped'] is True
    assert out['slice_paths'][0][0] == osp.join(folder, '006.png')
    assert is_channel_planar(out['img'])  # the reversed plan, not a reversed copy


@pytest.mark.parametrize('retain', [True, False])
def test_retain_freed_memory_is_applied_in_the_loading_process(tmp_path, monkeypatch, retain):
    calls = []
    monkeypatch.setattr(loading, 'retain_freed_cpu_memory', lambda: calls.append(1) or True)
    folder = write_series(tmp_path / 's', {i: 0 for i in range(0, 9)})
    load = LoadCTSlices(num_slices=3, slice_interval=1.0, retain_freed_memory=retain)
    load(results_for(folder, 4, 1.0))
    load(results_for(folder, 4, 1.0))
    assert len(calls) == (2 if retain else 0)  # (retain_freed_cpu_memory acts once a process)


def test_same_values_as_the_in_memory_volume_path(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(-1500, 1500, size=(12, 6, 7)).astype(np.int64)
    folder = str(tmp_path / 's')
    os.makedirs(folder)
    for z in range(12):  # file index = z + 1
        cv2.imwrite(osp.join(folder, f'{z + 1:03d}.png'), (volume[z] + 32768).astype(np.uint16))
    for key_z, interval in [(5, 1.0), (1, 2.0), (10, 0.7)]:
        loaded = LoadCTSlices(num_slices=7, slice_interval=2.5)(results_for(
            folder, key_z + 1, interval))['img']
        expected = sample_slices_from_volume(volume.astype(np.float32), key_z, 7, 2.5, interval)
        np.testing.assert_allclose(loaded, expected, rtol=1e-6, atol=1e-4)


def test_missing_key_slice(tmp_path):
    folder = write_series(tmp_path / 's', {4: 0, 6: 0})
    with pytest.raises(FileNotFoundError, match=r'key slice file .*005.png not found \(csv '
                       r'row\(s\) 7\)'):
        LoadCTSlices(num_slices=3)(results_for(folder, 5, 1.0))


def test_corrupt_png_names_the_file(tmp_path):
    folder = write_series(tmp_path / 's', {i: 0 for i in range(3, 8)})
    with open(osp.join(folder, '006.png'), 'wb') as handle:
        handle.write(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    with pytest.raises(ValueError, match=r'cannot decode CT slice .*006.png: corrupt'):
        LoadCTSlices(num_slices=3, slice_interval=1.0)(results_for(folder, 5, 1.0))


def test_8_bit_png_is_rejected(tmp_path):
    folder = write_series(tmp_path / 's', {i: 0 for i in range(3, 8)})
    cv2.imwrite(osp.join(folder, '004.png'), np.zeros((8, 10), np.uint8))
    with pytest.raises(ValueError, match=r'CT slice .*004.png is uint8, expected a 16-bit PNG'):
        LoadCTSlices(num_slices=3, slice_interval=1.0)(results_for(folder, 5, 1.0))


def test_colour_16_bit_png_is_rejected(tmp_path):
    folder = write_series(tmp_path / 's', {i: 0 for i in range(3, 8)})
    cv2.imwrite(osp.join(folder, '005.png'), np.zeros((8, 10, 3), np.uint16))
    with pytest.raises(ValueError, match=r'005.png has shape \(8, 10, 3\), expected a single'):
        LoadCTSlices(num_slices=3, slice_interval=1.0)(results_for(folder, 5, 1.0))


def test_image_size_of_the_annotation_must_match_the_png(tmp_path):
    folder = write_series(tmp_path / 's', {i: 0 for i in range(3, 8)}, shape=(8, 10))
    results = dict(results_for(folder, 5, 1.0), width=10, height=8)
    assert LoadCTSlices(num_slices=3, slice_interval=1.0)(results)['img'].shape == (8, 10, 3)
    wrong = dict(results_for(folder, 5, 1.0), width=8, height=10)
    with pytest.raises(ValueError, match=r"csv row\(s\) 7: annotated size 8x10 but the "
                       r'key slice .*005.png is 10x8 px'):
        LoadCTSlices(num_slices=3, slice_interval=1.0)(wrong)


@pytest.mark.parametrize('interval', [1e-6, 1e9, float('nan')])
def test_implausible_slice_interval_is_refused_at_once(tmp_path, interval, monkeypatch):
    folder = write_series(tmp_path / 's', {i: 0 for i in range(3, 8)})
    checks = []
    monkeypatch.setattr(loading.osp, 'isfile', lambda path: checks.append(path) or True)
    with pytest.raises(ValueError, match=r'005.png \(csv row\(s\) 7\): slice interval .* '
                       'outside the plausible CT range'):
        LoadCTSlices(num_slices=9)(results_for(folder, 5, interval))
    assert len(checks) == 1  # the key slice only, not millions of neighbours


def test_read_png_size(tmp_path):
    folder = write_series(tmp_path / 's', {5: 0}, shape=(7, 12))
    assert loading.read_png_size(osp.join(folder, '005.png')) == (12, 7)
    (tmp_path / 'x.png').write_bytes(b'GIF89a' + bytes(30))
    with pytest.raises(ValueError, match=r'x.png is not a PNG file'):
        loading.read_png_size(str(tmp_path / 'x.png'))
    with pytest.raises(FileNotFoundError, match='CT slice file not found'):
        loading.read_png_size(str(tmp_path / 'none.png'))


def test_img_path_must_be_the_key_slice(tmp_path):
    folder = write_series(tmp_path / 's', {i: 0 for i in range(3, 8)})
    results = results_for(folder, 5, 1.0)
    results['img_path'] = osp.join(folder, '004.png')
    with pytest.raises(ValueError, match='is not the key slice 005.png'):
        LoadCTSlices(num_slices=3)(results)


@pytest.mark.parametrize('kwargs,message', [
    (dict(num_slices=4), 'LoadCTSlices: num_slices must be an odd int >= 1'),
    (dict(), 'LoadCTSlices: num_slices is not set'),
    (dict(num_slices=9, slice_interval=0),
     r'LoadCTSlices: slice interval 0.0 mm is outside the plausible CT'),
    (dict(num_slices=9, hu_window=(100, -100)),
     r'LoadCTSlices: hu_window must be \(low, high\) HU with'),
    (dict(num_slices=9, flip_slice_order_prob=1.5), r'flip_slice_order_prob must be in \[0, 1\]'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoadCTSlices(**kwargs)


def test_registered():
    transform = TRANSFORMS.build(dict(type='LoadCTSlices', num_slices=11))
    assert isinstance(transform, LoadCTSlices) and transform.num_slices == 11

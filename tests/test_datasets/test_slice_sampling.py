"""Slice maths: positions, interpolation plan, missing-slice fallback, HU window, assembly."""
import numpy as np
import pytest

from mp3d_mmdet.datasets.slice_sampling import (
    SlicePlan, assemble_slices, clip_and_scale_hu, is_channel_planar, neighbour_positions,
    neighbour_sampling_plan, png_to_hu, sample_slices_from_volume)


def scaled(hu):
    """The default window by hand: [-1024, 1050] HU -> [0, 255]."""
    return (np.clip(hu, -1024.0, 1050.0) + 1024.0) * 255.0 / 2074.0


def test_neighbour_positions_exact():
    np.testing.assert_array_equal(
        neighbour_positions(10, 9, 2.5, 1.0), [0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0])
    np.testing.assert_array_equal(neighbour_positions(4, 5, 2.5, 5.0), [3.0, 3.5, 4.0, 4.5, 5.0])
    np.testing.assert_array_equal(neighbour_positions(7, 1, 2.5, 1.0), [7.0])


@pytest.mark.parametrize('num_slices', [0, 4, -3, 2.0])
def test_num_slices_must_be_odd_positive(num_slices):
    with pytest.raises(ValueError, match='num_slices must be an odd int >= 1'):
        neighbour_positions(0, num_slices, 2.5, 1.0)


@pytest.mark.parametrize('name,args', [('target_interval_mm', (0.0, 1.0)),
                                       ('slice_interval_mm', (2.5, -1.0)),
                                       ('slice_interval_mm', (2.5, float('nan')))])
def test_intervals_must_be_positive(name, args):
    with pytest.raises(ValueError, match=name):
        neighbour_positions(0, 3, *args)


def test_plan_interpolates_between_floor_and_ceil():
    # 2 mm slices, channels every 2.5 mm: positions key -/+ 1.25 and 2.5
    plan = neighbour_sampling_plan(10, 5, 2.5, 2.0, range(0, 21))
    assert isinstance(plan, SlicePlan)
    np.testing.assert_array_equal(plan.lower, [7, 8, 10, 11, 12])
    np.testing.assert_array_equal(plan.upper, [8, 9, 10, 12, 13])
    np.testing.assert_allclose(plan.upper_weight, [0.5, 0.75, 0.0, 0.25, 0.5])
    assert plan.lower.dtype == np.int64 and plan.upper_weight.dtype == np.float64


def test_plan_integer_positions_need_no_interpolation():
    # 1.25 mm slices: 2.5 mm steps land on every second slice (float error tolerated)
    plan = neighbour_sampling_plan(20, 3, 2.5, 1.25, range(0, 40))
    np.testing.assert_array_equal(plan.lower, [18, 20, 22])
    np.testing.assert_array_equal(plan.upper, [18, 20, 22])
    np.testing.assert_array_equal(plan.upper_weight, [0.0, 0.0, 0.0])


def test_plan_falls_back_towards_the_key_slice():
    # only slices 8..12 stored around key 10; 1 mm slices, 9 channels at 2.5 mm
    plan = neighbour_sampling_plan(10, 9, 2.5, 1.0, [8, 9, 10, 11, 12])
    # positions 0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20: everything beyond 8..12 -> 8 / 12
    np.testing.assert_array_equal(plan.lower, [8, 8, 8, 8, 10, 12, 12, 12, 12])
    np.testing.assert_array_equal(plan.upper, [8, 8, 8, 8, 10, 12, 12, 12, 12])
    np.testing.assert_array_equal(plan.upper_weight, np.zeros(9))


def test_plan_fallback_stops_at_the_nearest_available_slice_between():
    # gaps inside the window: 11, 12, 13 missing above the key, 9 missing below
    plan = neighbour_sampling_plan(10, 5, 2.5, 1.0, [6, 7, 8, 10, 14, 15])
    # positions 5, 7.5, 10, 12.5, 15
    # 5 -> 6 (nearest available between 5 and 10); 7.5 -> 7 / 8 mixed; 12.5 -> 12, 13 -> 10
    np.testing.assert_array_equal(plan.lower, [6, 7, 10, 10, 15])
    np.testing.assert_array_equal(plan.upper, [6, 8, 10, 10, 15])
    np.testing.assert_allclose(plan.upper_weight, [0.0, 0.5, 0.0, 0.0, 0.0])


def test_plan_needs_the_key_slice():
    with pytest.raises(ValueError, match='key slice index 10 is not among'):
        neighbour_sampling_plan(10, 3, 2.5, 1.0, [8, 9, 11])


def test_png_to_hu():
    values = np.array([[0, 32768], [33768, 65535]], np.uint16)
    np.testing.assert_array_equal(png_to_hu(values), [[-32768, 0], [1000, 32767]])
    assert png_to_hu(values).dtype == np.float32
    with pytest.raises(ValueError, match='uint16'):
        png_to_hu(values.astype(np.int32))


def test_clip_and_scale_hu_window_ends_and_clipping():
    hu = np.array([-3000.0, -1024.0, 13.0, 1050.0, 4000.0])
    out = clip_and_scale_hu(hu)
    np.testing.assert_allclose(out, [0.0, 0.0, 1037.0 * 255.0 / 2074.0, 255.0, 255.0],
                               rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(clip_and_scale_hu(np.array([-100.0, 0.0, 100.0]), (-100, 100),
                                                 (0.0, 1.0)), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match='hu_window'):
        clip_and_scale_hu(hu, (100, -100))


class CountingReader:
    """Constant (H, W) slices of given HU values; counts the reads per index."""

    def __init__(self, values_by_index, shape=(4, 6)):
        self.values = values_by_index
        self.shape = shape
        self.reads = {}

    def __call__(self, index):
        self.reads[index] = self.reads.get(index, 0) + 1
        return np.full(self.shape, self.values[index], np.float32)


@pytest.mark.parametrize('slice_interval,expected_hu', [
    (5.0, 150.0),  # +2.5 mm lies halfway between the key (0 mm, 100 HU) and +5 mm (200 HU)
    (2.0, 125.0),  # +2.5 mm between +2 mm (100 HU) and +4 mm (200 HU): 0.75 * 100 + 0.25 * 200
    (4.0, 162.5),  # +2.5 mm between 0 mm (100 HU) and +4 mm (200 HU), weight 0.625
])
def test_assemble_gives_the_exact_linear_mix(slice_interval, expected_hu):
    key = 10
    lower = key if slice_interval != 2.0 else key + 1
    values = {i: -500.0 for i in range(0, 21)}
    values[lower], values[lower + 1] = 100.0, 200.0
    plan = neighbour_sampling_plan(key, 3, 2.5, slice_interval, range(0, 21))
    img = assemble_slices(plan, CountingReader(values))
    assert img.shape == (4, 6, 3) and img.dtype == np.float32
    assert is_channel_planar(img) and img.transpose(2, 0, 1).flags.c_contiguous
    np.testing.assert_allclose(img[..., 2], scaled(expected_hu), rtol=1e-6)
    np.testing.assert_allclose(img[..., 1], scaled(values[key]), rtol=1e-6)


def test_assemble_interpolates_hu_before_clipping():
    values = {9: -3000.0, 10: 0.0, 11: 2000.0}
    plan = neighbour_sampling_plan(10, 3, 0.5, 1.0, [9, 10, 11])  # weights 0.5
    img = assemble_slices(plan, CountingReader(values))
    # mix first: -1500 HU -> clipped 0; 1000 HU -> 1000 (clip-first would give -512 / 525)
    np.testing.assert_allclose(img[0, 0], [0.0, scaled(0.0), scaled(1000.0)], rtol=1e-6)


@pytest.mark.parametrize('out_range', [(0.0, 255.0), (-1.0, 1.0), (10.0, 20.0), (0.1, 0.7),
                                       (-0.1, 0.2)])
def test_assemble_window_matches_clip_and_scale_hu(out_range):
    values = {9: -3000.0, 10: -1024.0, 11: 17.5, 12: 1050.0, 13: 4000.0}
    plan = neighbour_sampling_plan(11, 5, 1.0, 1.0, list(values))  # exact slices, weights 0
    img = assemble_slices(plan, CountingReader(values), (-1024.0, 1050.0), out_range)
    expected = clip_and_scale_hu(np.array([values[i] for i in range(9, 14)]),
                                 (-1024.0, 1050.0), out_range)
    np.testing.assert_allclose(img[2, 3], expected, rtol=1e-6, atol=1e-6)
    # saturated values are the range ends exactly (in float32)
    assert img[2, 3, 0] == np.float32(out_range[0]) and img[2, 3, 4] == np.float32(out_range[1])


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_assemble_rejects_non_finite_values(bad):
    values = {9: 0.0, 10: 0.0, 11: bad}
    plan = neighbour_sampling_plan(10, 3, 1.0, 1.0, [9, 10, 11])
    with pytest.raises(ValueError, match=r'slice 11 has 24 NaN or infinite values'):
        assemble_slices(plan, CountingReader(values))


def test_is_channel_planar():
    planes = np.zeros((5, 4, 3), np.float32)
    assert is_channel_planar(planes.transpose(1, 2, 0))
    assert not is_channel_planar(np.zeros((4, 3, 5), np.float32))  # interleaved
    assert not is_channel_planar(np.zeros((4, 3), np.float32))
    assert not is_channel_planar(np.zeros((1, 4, 3), np.float32).transpose(1, 2, 0))
    assert not is_channel_planar(np.flip(planes.transpose(1, 2, 0), axis=1))


def test_assemble_reads_each_slice_once_and_applies_value_offset():
    reader = CountingReader({i: 32768.0 + 10.0 * i for i in range(0, 30)})
    plan = neighbour_sampling_plan(15, 9, 2.5, 1.0, range(0, 30))
    img = assemble_slices(plan, reader, value_offset=-32768.0)
    # positions 5, 7.5, ..., 25: distinct slices 5, 7, 8, 10, 12, 13, 15, 17, 18, 20, 22, 23, 25
    assert sorted(reader.reads) == [5, 7, 8, 10, 12, 13, 15, 17, 18, 20, 22, 23, 25]
    assert set(reader.reads.values()) == {1}
    np.testing.assert_allclose(img[1, 1], scaled(10.0 * np.arange(5.0, 25.1, 2.5)), rtol=1e-6)


def test_assemble_rejects_inconsistent_slices():
    def reader(index):
        return np.zeros((4, 4) if index == 10 else (4, 5), np.float32)

    plan = neighbour_sampling_plan(10, 3, 1.0, 1.0, [9, 10, 11])
    with pytest.raises(ValueError, match=r'slice 9 has shape \(4, 5\), the centre \(key\) '
                       r'slice \(4, 4\)'):
        assemble_slices(plan, reader)


def test_sample_slices_from_volume_replicates_the_volume_ends():
    volume = np.arange(6, dtype=np.float32)[:, None, None] * 100.0 + np.zeros((6, 3, 2))
    img = sample_slices_from_volume(volume, 1, 5, 2.5, 2.5)  # 2.5 mm slices: indices -1..3
    np.testing.assert_allclose(img[0, 0], scaled(np.array([0.0, 0.0, 100.0, 200.0, 300.0])),
                               rtol=1e-6)
    assert img.shape == (3, 2, 5)
    with pytest.raises(ValueError, match='outside the volume'):
        sample_slices_from_volume(volume, 6, 5, 2.5, 2.5)
    with pytest.raises(ValueError, match=r'\(Z, H, W\)'):
        sample_slices_from_volume(volume[0], 0, 5, 2.5, 2.5)

"""The argument checks: slice counts and depths, HU windows, the plausible CT spacing range."""
import math

import numpy as np
import pytest

from mp3d_mmdet.utils.validation import (PIXEL_SPACING_RANGE_MM, SLICE_INTERVAL_RANGE_MM,
                                         check_hu_window, check_num_slices,
                                         check_slice_depths, ct_spacing_problem)


@pytest.mark.parametrize('pixel, interval', [
    ((0.488281, 0.488281), 5.0),  # DeepLesion
    ((0.18, 0.18), 0.6),
    (PIXEL_SPACING_RANGE_MM[:1] * 2, SLICE_INTERVAL_RANGE_MM[0]),  # bounds are inclusive
    (PIXEL_SPACING_RANGE_MM[1:] * 2, SLICE_INTERVAL_RANGE_MM[1]),
    (None, 2.5),
    ((0.7, 0.7), None),
])
def test_plausible_spacings_pass(pixel, interval):
    assert ct_spacing_problem(pixel, interval) is None


@pytest.mark.parametrize('pixel, interval, expected', [
    (None, 1e-6, 'slice interval 1e-06 mm is outside the plausible CT range 0.1-20 mm'),
    (None, 1e9, 'slice interval 1000000000.0 mm'),
    ((1e-4, 0.7), 2.5, 'pixel spacing (x) 0.0001 mm is outside the plausible CT range 0.05-15'),
    ((0.7, 16.0), 2.5, 'pixel spacing (y) 16.0 mm'),
    ((0.7, 0.7), math.nan, 'slice interval nan mm'),
    ((math.inf, 0.7), 2.5, 'pixel spacing (x) inf mm'),
    ((0.0, 0.7), 2.5, 'pixel spacing (x) 0.0 mm'),
    ((0.7, 0.7), -2.5, 'slice interval -2.5 mm'),
])
def test_implausible_spacings_are_named(pixel, interval, expected):
    problem = ct_spacing_problem(pixel, interval)
    assert problem is not None and expected in problem and '\n' not in problem


@pytest.mark.parametrize('value', [1, 3, 9, 27, np.int64(5)])
def test_slice_counts_that_pass(value):
    assert check_num_slices(value) == int(value)


@pytest.mark.parametrize('value, message', [
    (0, 'num_slices must be an odd int >= 1'), (8, 'num_slices must be an odd int'),
    (9.0, 'num_slices must be an odd int'), (True, 'num_slices must be an odd int'),
    ('9', 'num_slices must be an odd int'), (None, 'num_slices is not set: a config sets'),
])
def test_slice_counts_that_fail_name_the_owner(value, message):
    with pytest.raises(ValueError, match=rf'^Owner: {message}'):
        check_num_slices(value, owner='Owner')


def test_slice_depths():
    assert check_slice_depths(9, 4) == [9, 9, 9, 9]
    assert check_slice_depths([5, 3, 2, 1], 4) == [5, 3, 2, 1]
    with pytest.raises(ValueError, match=r'GTM: num_slices must be a positive int or one per '
                       r'level \(4\), got \[5, 3\]'):
        check_slice_depths([5, 3], 4, owner='GTM')
    with pytest.raises(ValueError, match='must be an odd positive int'):
        check_slice_depths([5, 3, 2, 1], 4, odd=True)
    with pytest.raises(ValueError, match='is not set'):
        check_slice_depths(None, 4)


def test_hu_window():
    assert check_hu_window((-1024, 1050), (0, 255)) == (-1024.0, 1050.0)
    for window, message in [((400, -100), r'hu_window must be \(low, high\) HU with finite '
                             r'low < high, got \(400, -100\)'),
                            ((0, math.inf), 'hu_window must be'), ((1, 2, 3), 'hu_window')]:
        with pytest.raises(ValueError, match=message):
            check_hu_window(window)
    with pytest.raises(ValueError, match=r'^L: out_range must be \(low, high\) with finite'):
        check_hu_window((-100, 100), (255, 0), owner='L')


@pytest.mark.parametrize('box, ok', [
    ((225.169, 89.0204, 240.252, 110.977), True),
    ((0.0, 0.0, 0.01, 0.01), True),
    ((225.169, 89.0204, 225.169 + 1e-6, 89.0204 + 1e-6), False),  # > 0 in float64 only
    ((100.0000001, 5.0, 100.0000002, 9.0), False),
    ((0.0, 0.0, 0.001, 5.0), False),
    ((5.0, 5.0, 4.0, 9.0), False),
])
def test_box_size_rule_in_float32(box, ok):
    from mp3d_mmdet.utils.validation import box_size_problem
    problem = box_size_problem(box)
    assert (problem is None) == ok
    if not ok:
        assert problem.startswith('a box of positive width and height (sides of at least '
                                  '0.01 px between float32 corners')

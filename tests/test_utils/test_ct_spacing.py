"""The plausible CT spacing range: inside accepted, outside and non-finite named."""
import math

import pytest

from mp3d_mmdet.utils.ct_spacing import (PIXEL_SPACING_RANGE_MM, SLICE_INTERVAL_RANGE_MM,
                                         ct_spacing_problem)


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

"""The two FROC protocols on hand-computed cases: the IoU convention, the reading of the curve
at rates it reaches exactly, between its steps and past its end."""
import numpy as np
import pytest

from mp3d_mmdet.evaluation import sens_at_fp
from mp3d_mmdet.evaluation.functional import (FROC_PROTOCOLS, froc_curve, get_froc_protocol,
                                              interp1d_sensitivity)

A = [0, 0, 9, 9]
B = [20, 20, 29, 29]
C = [40, 40, 49, 49]
FAR = [200, 200, 209, 209]


def det(box, score):
    return list(box) + [score]


# two images; ranked: hit A, FP, hit B, FP, hit C, FP -> curve points (FP rate, sensitivity)
# (0, 1/3) (.5, 1/3) (.5, 2/3) (1, 2/3) (1, 1) (1.5, 1)
DETECTIONS = [np.array([det(A, 0.9), det(B, 0.7), det(FAR, 0.6)]),
              np.array([det(FAR, 0.8), det(C, 0.5), det(FAR, 0.4)])]
LESIONS = [np.array([A, B], dtype=float), np.array([C], dtype=float)]
RATES = [0.25, 0.5, 0.75, 1.0, 2.0]


def test_the_curve_is_the_same_under_both_protocols():
    curve = froc_curve(DETECTIONS, LESIONS, legacy_plus_one=False)
    np.testing.assert_allclose(curve.fp_per_image, [0, 0.5, 0.5, 1, 1, 1.5])
    np.testing.assert_allclose(curve.sensitivity, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])


def test_deeplesion_reads_the_last_point_of_a_rate_and_holds_past_the_end():
    np.testing.assert_allclose(sens_at_fp(DETECTIONS, LESIONS, RATES),
                               [1 / 3, 2 / 3, 2 / 3, 1, 1])


def test_mp3d_reads_the_first_point_of_a_rate_and_extrapolates_past_the_end():
    # 0.5 and 1.0 are reached exactly: the sensitivity when the 1st / 2nd FP is ranked;
    # 2.0 lies past the end: the line through (1, 1) and (1.5, 1)
    np.testing.assert_allclose(sens_at_fp(DETECTIONS, LESIONS, RATES, protocol='mp3d'),
                               [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])


def test_mp3d_past_the_end_of_a_curve_ending_on_a_hit_is_scipys_infinity():
    # without the last FP the curve ends (1, 2/3) (1, 1): a zero-length segment
    detections = [DETECTIONS[0], DETECTIONS[1][:2]]
    values = sens_at_fp(detections, LESIONS, [1.0, 2.0], protocol='mp3d')
    assert values[0] == pytest.approx(2 / 3) and values[1] == np.inf
    assert sens_at_fp(detections, LESIONS, [1.0, 2.0]).tolist() == [1.0, 1.0]


def test_mp3d_computes_the_iou_without_the_plus_one():
    # lesion [0, 0, 1, 1], detection [0, 0, 1, 3]: IoU 1/3 in continuous coordinates,
    # (2 * 2) / (2 * 4) = 0.5 with inclusive pixels
    detections = [np.array([[0, 0, 1, 3, 0.9], FAR + [0.1]], dtype=float)]
    lesions = [np.array([[0, 0, 1, 1]], dtype=float)]
    assert sens_at_fp(detections, lesions, [1.0]).tolist() == [1.0]  # hit, then one FP
    assert sens_at_fp(detections, lesions, [1.0], protocol='mp3d').tolist() == [0.0]
    # the IoU convention can be set apart from the reading rule
    assert sens_at_fp(detections, lesions, [1.0], legacy_plus_one=False).tolist() == [0.0]
    assert sens_at_fp(detections, lesions, [1.0], legacy_plus_one=True,
                      protocol='mp3d').tolist() == [1.0]


def test_interp1d_reading_below_the_curve_and_on_short_curves():
    # below the first point scipy continues the first segment
    np.testing.assert_allclose(interp1d_sensitivity([0.5, 1.0], [0.0, 0.5], [0.25]), [-0.25])
    assert interp1d_sensitivity([], [], [1.0, 2.0]).tolist() == [0.0, 0.0]
    assert interp1d_sensitivity([0.5], [0.4], [0.25, 0.5, 3.0]).tolist() == [0.0, 0.4, 0.4]


def test_protocol_table_and_unknown_names():
    assert sorted(FROC_PROTOCOLS) == ['deeplesion', 'mp3d']
    assert get_froc_protocol('deeplesion').legacy_plus_one is True
    assert get_froc_protocol('mp3d').legacy_plus_one is False
    assert get_froc_protocol(FROC_PROTOCOLS['mp3d']) is FROC_PROTOCOLS['mp3d']
    with pytest.raises(ValueError, match=r"unknown FROC protocol 'lens'; choose one of "
                       r"\['deeplesion', 'mp3d'\]"):
        sens_at_fp(DETECTIONS, LESIONS, protocol='lens')


def test_fp_rate_rule_refuses_a_repeated_rate_where_a_mean_is_taken():
    from mp3d_mmdet.evaluation.functional.froc_protocols import check_fps
    np.testing.assert_array_equal(check_fps([4, 0.5, 2, 0.5]), [4, 0.5, 2, 0.5])  # a reading
    with pytest.raises(ValueError, match=r'fps must not repeat a rate \(0.5 is given more than '
                       r'once\), got \[4.0, 0.5, 2.0, 0.5\]'):
        check_fps([4, 0.5, 2, 0.5], distinct=True)
    np.testing.assert_array_equal(check_fps([4, 0.5, 2], distinct=True), [4, 0.5, 2])


def test_only_the_mp3d_protocol_evaluates_the_file_box():
    assert FROC_PROTOCOLS['deeplesion'].clip_gt_to_image
    assert not FROC_PROTOCOLS['mp3d'].clip_gt_to_image

"""Hand-computed cases for each rule of the DeepLesion FROC protocol (vectorised core).

Boxes are chosen so that IoUs are exact: a detection equal to a lesion box (IoU 1) hits it,
``far`` boxes overlap nothing.
"""
import numpy as np
import pytest

from mp3d_mmdet.evaluation import sens_at_fp
from mp3d_mmdet.evaluation.functional import (DEFAULT_FPS, FROCCurve, froc_curve,
                                              interpolate_sensitivity,
                                              lesion_subset_froc_curves)

A = [0, 0, 9, 9]
B = [20, 20, 29, 29]
FAR = [200, 200, 209, 209]


def det(box, score):
    return list(box) + [score]


def dets(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def gts(*boxes):
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def test_ranking_across_images_and_fp_rate_over_all_images():
    boxes = [
        dets(det(A, 0.9), det(FAR, 0.8)),  # image 0: lesion A
        dets(det(FAR, 0.95), det(B, 0.7)),  # image 1: lesion B
        dets(),  # image 2: nothing at all -- still counts in the FP rate
        dets(det(FAR, 0.6)),  # image 3: no lesion: its detection is a false positive
    ]
    curve = froc_curve(boxes, [gts(A), gts(B), gts(), gts()])
    assert isinstance(curve, FROCCurve)
    assert (curve.num_images, curve.num_gts) == (4, 2)
    # ranked: FP(0.95) hit(0.9) FP(0.8) hit(0.7) FP(0.6)
    np.testing.assert_array_equal(curve.scores, [0.95, 0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(curve.fp_per_image, np.array([1, 1, 2, 2, 3]) / 4)
    np.testing.assert_array_equal(curve.sensitivity, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(
        curve.sens_at_fp([0.1, 0.25, 0.3, 0.5, 0.75, 2.0]),
        # below first point; exact 0.25 -> last point with 1 FP; between; exact 0.5 -> last
        # point with 2 FPs; exact last; beyond the end
        [0.0, 0.5, 0.5, 1.0, 1.0, 1.0])


def test_duplicate_detection_of_a_hit_lesion_is_neither_hit_nor_fp():
    shifted = [0, 0, 9, 10]  # IoU 100/110 with A
    curve = froc_curve([dets(det(A, 0.9), det(shifted, 0.8), det(FAR, 0.7))], [gts(A)])
    np.testing.assert_array_equal(curve.sensitivity, [1, 1, 1])
    np.testing.assert_array_equal(curve.fp_per_image, [0, 0, 1])


def test_one_detection_hits_several_lesions():
    a2 = [0, 0, 9, 10]  # overlaps A with IoU 0.91; the detection A hits both at once
    curve = froc_curve([dets(det(A, 0.9), det(B, 0.5))], [gts(A, a2, B)])
    np.testing.assert_allclose(curve.sensitivity, [2 / 3, 1.0])
    np.testing.assert_array_equal(curve.fp_per_image, [0, 0])


def test_multi_hit_skips_already_hit_lesions():
    a2 = [0, 0, 9, 10]
    first = [0, 0, 9, 11]  # IoU with a2 = 110/120 = 0.917, with A = 100/120 = 0.833
    curve = froc_curve([dets(det(first, 0.9), det(A, 0.8))], [gts(A, a2)], iou_thr=0.9)
    # 0.9: hits a2 only; 0.8: IoU(A, A)=1 and IoU(A, a2)=0.91 -> hits A only (a2 taken)
    np.testing.assert_array_equal(curve.sensitivity, [0.5, 1.0])
    np.testing.assert_array_equal(curve.fp_per_image, [0, 0])


def test_best_iou_below_threshold_is_fp_and_threshold_is_inclusive():
    top_half = [0, 0, 9, 4]  # 50 of A's 100 pixels: IoU exactly 0.5
    top_40 = [0, 0, 9, 3]  # IoU 0.4
    curve = froc_curve([dets(det(top_40, 0.9), det(top_half, 0.8))], [gts(A)])
    np.testing.assert_array_equal(curve.fp_per_image, [1, 1])
    np.testing.assert_array_equal(curve.sensitivity, [0, 1])
    curve = froc_curve([dets(det(top_40, 0.9))], [gts(A)], iou_thr=0.4)
    np.testing.assert_array_equal(curve.sensitivity, [1])


def test_legacy_plus_one_convention_changes_the_outcome():
    gt, half = [0, 0, 3, 3], [0, 0, 3, 1]  # legacy IoU 8/16 = 0.5, continuous 3/9
    legacy = froc_curve([dets(det(half, 0.9))], [gts(gt)], legacy_plus_one=True)
    continuous = froc_curve([dets(det(half, 0.9))], [gts(gt)], legacy_plus_one=False)
    np.testing.assert_array_equal(legacy.sensitivity, [1])
    np.testing.assert_array_equal(legacy.fp_per_image, [0])
    np.testing.assert_array_equal(continuous.sensitivity, [0])
    np.testing.assert_array_equal(continuous.fp_per_image, [1])


def test_detection_hits_only_lesions_of_its_own_image():
    # image 1's detection lies exactly on image 0's lesion -> a false positive
    curve = froc_curve([dets(), dets(det(A, 0.9))], [gts(A), gts()])
    np.testing.assert_array_equal(curve.fp_per_image, [0.5])
    np.testing.assert_array_equal(curve.sensitivity, [0])


def test_ties_keep_input_order_stable_sort():
    # same score: image 0's FP comes before image 1's hit
    curve = froc_curve([dets(det(FAR, 0.5)), dets(det(B, 0.5))], [gts(A), gts(B)])
    np.testing.assert_array_equal(curve.fp_per_image, [0.5, 0.5])
    np.testing.assert_array_equal(curve.sensitivity, [0, 0.5])
    curve = froc_curve([dets(det(B, 0.5)), dets(det(FAR, 0.5))], [gts(B), gts(A)])
    np.testing.assert_array_equal(curve.fp_per_image, [0, 0.5])
    np.testing.assert_array_equal(curve.sensitivity, [0.5, 0.5])
    # within one image: the first of two equal-score detections is processed first
    curve = froc_curve([dets(det(FAR, 0.5), det(A, 0.5), det(A, 0.5))], [gts(A)])
    np.testing.assert_array_equal(curve.fp_per_image, [1, 1, 1])
    np.testing.assert_array_equal(curve.sensitivity, [0, 1, 1])


def test_no_detection_at_all_gives_zero_sensitivity():
    curve = froc_curve([dets(), np.zeros((0, 4))], [gts(A), gts(B)])
    assert curve.fp_per_image.shape == (0, )
    np.testing.assert_array_equal(curve.sens_at_fp(), np.zeros(len(DEFAULT_FPS)))


def test_ignored_lesions_make_detections_neither_hit_nor_fp():
    boxes = [dets(det(B, 0.9), det(A, 0.8), det(FAR, 0.7))]
    plain = froc_curve(boxes, [gts(A)])
    np.testing.assert_array_equal(plain.fp_per_image, [1, 1, 2])
    ignoring = froc_curve(boxes, [gts(A)], ignored_gts_per_image=[gts(B)])
    np.testing.assert_array_equal(ignoring.fp_per_image, [0, 0, 1])
    np.testing.assert_array_equal(ignoring.sensitivity, [0, 1, 1])


def test_sens_at_fp_defaults_and_package_export():
    boxes = [dets(det(A, 0.9), det(FAR, 0.8)), dets(det(FAR, 0.7), det(B, 0.6))]
    # ranked: hit (0, .5), FP (.5, .5), FP (1, .5), hit (1, 1)
    result = sens_at_fp(boxes, [gts(A), gts(B)])
    assert result.shape == (6, )
    np.testing.assert_array_equal(result, [0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(sens_at_fp(boxes, [gts(A), gts(B)], fps=[0.25, 0.5]),
                                  [0.5, 0.5])


def test_interpolation_rules_on_a_given_curve():
    x = np.array([0.5, 1.5])
    y = np.array([0.2, 0.6])
    np.testing.assert_allclose(interpolate_sensitivity(x, y, [0.25, 0.5, 1.0, 1.5, 3.0]),
                               [0.0, 0.2, 0.4, 0.6, 0.6])
    # repeated FP values: exact -> last point of the run; between -> from that last point
    x = np.array([1.0, 1.0, 1.0, 2.0])
    y = np.array([0.1, 0.2, 0.3, 0.5])
    np.testing.assert_allclose(interpolate_sensitivity(x, y, [1.0, 1.5, 2.0, 0.0]),
                               [0.3, 0.4, 0.5, 0.0])
    # a curve starting at 0 FPs: rate 0 reads the last 0-FP point
    np.testing.assert_allclose(interpolate_sensitivity([0, 0, 1], [0.1, 0.4, 0.4], [0]), [0.4])
    assert interpolate_sensitivity([], [], [1, 2]).tolist() == [0.0, 0.0]


@pytest.mark.parametrize('kwargs, message', [
    (dict(boxes_per_image=[dets()], gts_per_image=[gts(A), gts(B)]), 'one entry per image'),
    (dict(boxes_per_image=[np.zeros((2, 4))], gts_per_image=[gts(A)]),
     r'boxes_per_image\[0\] must have shape \(k, 5\)'),
    (dict(boxes_per_image=[dets()], gts_per_image=[np.zeros((1, 5))]),
     r'gts_per_image\[0\] must have shape \(k, 4\)'),
    (dict(boxes_per_image=[dets(), dets(det(A, np.nan))], gts_per_image=[gts(A), gts()]),
     r'boxes_per_image\[1\] has a non-finite value in row 0'),
    (dict(boxes_per_image=[dets(det(A, 0.1), det([5, 0, 4, 9], 0.2))], gts_per_image=[gts(A)]),
     r'boxes_per_image\[0\] has an inverted box .* in row 1'),
    (dict(boxes_per_image=[dets()], gts_per_image=[gts()]), 'no ground-truth box'),
    (dict(boxes_per_image=[dets()], gts_per_image=[gts(A)], iou_thr=0.0), r'iou_thr must be in'),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        froc_curve(**kwargs)


def test_bad_fps():
    with pytest.raises(ValueError, match='fps must be finite and >= 0'):
        sens_at_fp([dets(det(A, 0.5))], [gts(A)], fps=[1, -0.5])
    with pytest.raises(ValueError, match='fps must be finite and >= 0'):
        interpolate_sensitivity([0.0], [1.0], [np.inf])


def test_lesion_subsets_hand_computed_and_bad_masks():
    boxes = [dets(det(B, 0.9), det(A, 0.8), det(FAR, 0.7))]
    masks = {'a': [np.array([True, False])], 'none': [np.array([False, False])]}
    curves = lesion_subset_froc_curves(boxes, [gts(A, B)], masks)
    assert curves['none'] is None
    # B's detection is a false positive for subset {A}
    np.testing.assert_array_equal(curves['a'].fp_per_image, [1, 1, 2])
    np.testing.assert_array_equal(curves['a'].sensitivity, [0, 1, 1])
    curves = lesion_subset_froc_curves(boxes, [gts(A, B)], masks,
                                       out_of_subset_detections='ignore')
    np.testing.assert_array_equal(curves['a'].fp_per_image, [0, 0, 1])
    with pytest.raises(ValueError, match=r"subset_masks\['a'\]\[0\] must have shape \(2,\)"):
        lesion_subset_froc_curves(boxes, [gts(A, B)], {'a': [np.array([True])]})
    with pytest.raises(ValueError, match='one mask per image'):
        lesion_subset_froc_curves(boxes, [gts(A, B)], {'a': []})
    with pytest.raises(ValueError, match='out_of_subset_detections must be'):
        lesion_subset_froc_curves(boxes, [gts(A, B)], masks, out_of_subset_detections='drop')


def test_lesion_subsets_accept_one_flat_mask():
    boxes = [dets(det(B, 0.9)), dets(det(A, 0.8))]
    per_image = lesion_subset_froc_curves(boxes, [gts(A, B), gts(A)],
                                          {'s': [np.array([False, True]), np.array([True])]})
    flat = lesion_subset_froc_curves(boxes, [gts(A, B), gts(A)],
                                     {'s': np.array([False, True, True])})
    np.testing.assert_array_equal(per_image['s'].sensitivity, flat['s'].sensitivity)
    np.testing.assert_array_equal(flat['s'].sensitivity, [0.5, 1.0])
    with pytest.raises(ValueError, match='must flag each of the 3 lesions, got 2'):
        lesion_subset_froc_curves(boxes, [gts(A, B), gts(A)], {'s': np.array([True, False])})

"""The 3D FROC of LENS: hand-computed cases for each overlap and the key-slice mode, and the
vectorised curve against the plain-loop reference on random cases."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mp3d_mmdet.evaluation import (DEFAULT_FPS_3D, froc_curve_3d, lesion_subset_froc_curves_3d,
                                   sens_at_fp_3d)
from mp3d_mmdet.evaluation.functional.froc_reference import (froc_curve_3d_reference,
                                                             lens_sensitivity_reference,
                                                             overlap_3d_reference)

# volume 0: lesion L1 (1000 voxels) with a small detection inside it (64 voxels)
# volume 1: lesion L2 (27 voxels) inside a large detection (3375 voxels), and a far detection
L1, L2 = [0, 0, 0, 9, 9, 9], [20, 20, 20, 22, 22, 22]
INSIDE, AROUND, FAR = [2, 2, 2, 5, 5, 5], [15, 15, 15, 29, 29, 29], [100, 100, 100, 104, 104, 104]
BOXES = [np.array([INSIDE + [0.9]], dtype=float),
         np.array([AROUND + [0.8], FAR + [0.7]], dtype=float)]
GTS = [np.array([L1], dtype=float), np.array([L2], dtype=float)]
RATES = [0.125, 0.5, 1.0, 8.0]


@pytest.mark.parametrize('overlap, expected', [
    # INSIDE: IoBB 1, IoU = IoGT = 64/1000; AROUND: IoGT 1, IoU = IoBB = 27/3375
    ('iobb', [0.5, 0.5, 0.5, 0.5]),  # hit, FP, FP: (0, .5) (.5, .5) (1, .5)
    ('iou', [0.0, 0.0, 0.0, 0.0]),  # three FPs
    ('iogt', [0.0, 0.5, 0.5, 0.5]),  # FP, hit, FP: (.5, 0) (.5, .5) (1, .5); 0 below .5
    ('iobbgt', [1.0, 1.0, 1.0, 1.0]),  # hit, hit, FP
])
def test_each_overlap_on_hand_computed_boxes(overlap, expected):
    np.testing.assert_allclose(sens_at_fp_3d(BOXES, GTS, RATES, overlap=overlap), expected)


def test_curve_points_and_defaults():
    curve = froc_curve_3d(BOXES, GTS)  # IoBB >= 0.3
    np.testing.assert_allclose(curve.fp_per_image, [0, 0.5, 1.0])
    np.testing.assert_allclose(curve.sensitivity, [0.5, 0.5, 0.5])
    assert curve.num_images == 2 and curve.num_gts == 2
    assert DEFAULT_FPS_3D == (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    # a threshold above the INSIDE detection's IoU but not its IoBB
    assert sens_at_fp_3d(BOXES, GTS, [1.0], overlap='iou', overlap_thr=0.06).tolist() == [0.5]


def test_key_slice_mode_needs_the_slice_in_the_detection_z_range():
    gt = [np.array([[0, 0, 5, 9, 9, 5]], dtype=float)]  # drawn on slice 5
    below = [0, 0, 6, 9, 9, 9, 0.95]  # the same square on slices 6..9: misses slice 5
    through = [0, 0, 3, 9, 9, 6, 0.9]  # slices 3..6
    boxes = [np.array([below, through])]
    # ranked: FP (1, 0), hit (1, 1)
    np.testing.assert_allclose(sens_at_fp_3d(boxes, gt, [0.5, 1.0, 2.0], key_slice_gt=True),
                               [0.0, 1.0, 1.0])
    # the overlap is the in-plane one: a 5 x 5 square in the 10 x 10 lesion has IoBB 1, IoU .25
    small = [np.array([[0, 0, 4, 4, 4, 6, 0.9]])]
    assert sens_at_fp_3d(small, gt, [1.0], key_slice_gt=True).tolist() == [1.0]
    assert sens_at_fp_3d(small, gt, [1.0], overlap='iou', key_slice_gt=True).tolist() == [0.0]
    with pytest.raises(ValueError, match=r'key-slice ground truth must be \[x1, y1, z, x2, y2, '
                       r'z\] \(z1 == z2\), lesion 0'):
        froc_curve_3d(boxes, [np.array([L1], dtype=float)], key_slice_gt=True)


def test_size_subsets_count_other_lesions_detections_as_false_positives():
    masks = {'small': [np.array([False]), np.array([True])],
             'none': np.array([False, False])}
    curves = lesion_subset_froc_curves_3d(BOXES, GTS, masks, overlap='iobbgt')
    # L2 only: INSIDE (on L1) is a false positive, then AROUND hits: (.5, 0) (.5, 1) (1, 1)
    np.testing.assert_allclose(curves['small'].fp_per_image, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(curves['small'].sensitivity, [0.0, 1.0, 1.0])
    assert curves['none'] is None


def test_bad_input_is_a_one_line_error_naming_the_argument():
    with pytest.raises(ValueError, match="overlap must be one of .* got 'dice'"):
        sens_at_fp_3d(BOXES, GTS, overlap='dice')
    with pytest.raises(ValueError, match=r'overlap_thr must be in \(0, 1\], got 0'):
        sens_at_fp_3d(BOXES, GTS, overlap_thr=0)
    with pytest.raises(ValueError, match=r'boxes_per_volume\[0\] must have shape \(k, 7\)'):
        sens_at_fp_3d([np.zeros((1, 5))], GTS[:1])
    with pytest.raises(ValueError, match='boxes_per_volume and gts_per_volume must have one '
                       'entry per volume, got 2 and 1'):
        sens_at_fp_3d(BOXES, GTS[:1])


# ----------------------------------------------------------------- against the loop reference
SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def boxes_3d(draw, n_max, key_slice=False):
    rows = []
    for _ in range(draw(st.integers(0, n_max))):
        lo = [draw(st.integers(0, 10)) for _ in range(3)]
        size = [draw(st.integers(0, 6)) for _ in range(3)]
        if key_slice:
            size[2] = 0
        rows.append(lo + [a + b for a, b in zip(lo, size)])
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


@st.composite
def froc_3d_inputs(draw):
    key_slice = draw(st.booleans())
    num_volumes = draw(st.integers(1, 5))
    score = (st.sampled_from([0.25, 0.5, 1.0]) if draw(st.booleans()) else
             st.floats(0.0, 1.0, allow_nan=False))
    boxes, gts = [], []
    for _ in range(num_volumes):
        b = draw(boxes_3d(6))
        boxes.append(np.concatenate([b, [[draw(score)] for _ in range(len(b))]], axis=1)
                     if len(b) else np.zeros((0, 7)))
        gts.append(draw(boxes_3d(3, key_slice)))
    if sum(len(g) for g in gts) == 0:
        gts[0] = draw(boxes_3d(3, key_slice).filter(len))
    return dict(boxes_per_volume=boxes, gts_per_volume=gts,
                overlap=draw(st.sampled_from(['iou', 'iobb', 'iogt', 'iobbgt'])),
                overlap_thr=draw(st.sampled_from([0.1, 0.3, 0.5, 1.0])),
                key_slice_gt=key_slice)


@SETTINGS
@given(froc_3d_inputs())
def test_vectorised_3d_curve_and_reading_equal_the_loop_reference(inputs):
    curve = froc_curve_3d(**inputs)
    sensitivity, fp_per_volume = froc_curve_3d_reference(**inputs)
    np.testing.assert_array_equal(curve.sensitivity, sensitivity)
    np.testing.assert_array_equal(curve.fp_per_image, fp_per_volume)
    fps = np.concatenate([np.unique(fp_per_volume), DEFAULT_FPS_3D, [0.0, 16.0]])
    np.testing.assert_array_equal(sens_at_fp_3d(fps=fps, **inputs),
                                  lens_sensitivity_reference(fp_per_volume, sensitivity, fps))


def test_reference_overlap_matches_hand_values():
    gts = np.array([L1], dtype=float)
    box = np.array(INSIDE, dtype=float)
    assert overlap_3d_reference(box, gts, 'iobb', False).tolist() == [1.0]
    assert overlap_3d_reference(box, gts, 'iou', False).tolist() == [0.064]

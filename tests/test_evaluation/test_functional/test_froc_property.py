"""Property tests: the vectorised FROC equals the plain-loop reference (the specification).

Coordinates are small integers so that IoUs sit exactly on thresholds, overlapping lesions
and duplicate detections are frequent; scores come from a tiny set so that ties are common.
Deterministic: hypothesis runs derandomized.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mp3d_mmdet.evaluation.functional import (froc_curve, interp1d_sensitivity,
                                              interpolate_sensitivity,
                                              lesion_subset_froc_curves)
from mp3d_mmdet.evaluation.functional.froc import _stable_descending_order
from mp3d_mmdet.evaluation.functional.froc_reference import (
    froc_curve_reference, interpolate_sensitivity_reference, official_mp3d_sensitivity_reference)

SETTINGS = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def boxes(draw, n_max):
    n = draw(st.integers(0, n_max))
    rows = []
    for _ in range(n):
        x1, y1 = draw(st.integers(0, 12)), draw(st.integers(0, 12))
        w, h = draw(st.integers(0, 8)), draw(st.integers(0, 8))
        rows.append([x1, y1, x1 + w, y1 + h])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


@st.composite
def froc_inputs(draw):
    num_images = draw(st.integers(1, 6))
    tied = draw(st.booleans())
    score = (st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0]) if tied else
             st.floats(-1.0, 1.0, allow_nan=False))
    detections, lesions, ignored = [], [], []
    for _ in range(num_images):
        box = draw(boxes(6))
        scores = np.array([draw(score) for _ in range(len(box))]).reshape(-1, 1)
        detections.append(np.concatenate([box, scores], axis=1))
        lesions.append(draw(boxes(3)))
        ignored.append(draw(boxes(2)))
    if sum(len(g) for g in lesions) == 0:  # sensitivity needs at least one lesion
        lesions[draw(st.integers(0, num_images - 1))] = draw(boxes(3).filter(len))
    return dict(
        boxes_per_image=detections,
        gts_per_image=lesions,
        iou_thr=draw(st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 0.7, 1.0])),
        legacy_plus_one=draw(st.booleans()),
        ignored_gts_per_image=ignored if draw(st.booleans()) else None)


@SETTINGS
@given(froc_inputs(), st.lists(st.floats(0, 8, allow_nan=False), max_size=6))
def test_vectorised_curve_equals_loop_reference(inputs, extra_fps):
    curve = froc_curve(**inputs)
    sensitivity, fp_per_image = froc_curve_reference(**inputs)
    np.testing.assert_array_equal(curve.sensitivity, sensitivity)
    np.testing.assert_array_equal(curve.fp_per_image, fp_per_image)
    # rates that the curve hits exactly, the standard ones, and arbitrary ones
    fps = np.concatenate([np.unique(fp_per_image), [0, 0.5, 1, 2, 4, 8, 16], extra_fps])
    np.testing.assert_array_equal(
        curve.sens_at_fp(fps), interpolate_sensitivity_reference(fp_per_image, sensitivity, fps))


@SETTINGS
@given(froc_inputs(), st.lists(st.floats(0, 8, allow_nan=False), max_size=6))
def test_mp3d_protocol_reads_the_curve_as_scipy_interp1d(inputs, extra_fps):
    inputs = dict(inputs, legacy_plus_one=False, ignored_gts_per_image=None)
    sensitivity, fp_per_image = froc_curve_reference(**inputs)
    fps = np.concatenate([np.unique(fp_per_image), [0, 0.5, 1, 2, 4, 8, 16], extra_fps])
    if len(fp_per_image) >= 2:  # what scipy can interpolate
        np.testing.assert_array_equal(
            froc_curve(**inputs).sens_at_fp(fps, protocol='mp3d'),
            official_mp3d_sensitivity_reference(fp_per_image, sensitivity, fps))


@SETTINGS
@given(st.lists(st.tuples(st.floats(0, 3, allow_nan=False), st.floats(0, 1)), min_size=2,
                max_size=12),
       st.lists(st.floats(0, 4, allow_nan=False), max_size=8))
def test_interp1d_reading_equals_scipy_on_arbitrary_monotone_curves(steps, fps):
    x = np.cumsum([dx for dx, _ in steps])
    y = np.cumsum([dy for _, dy in steps])
    np.testing.assert_array_equal(interp1d_sensitivity(x, y, fps),
                                  official_mp3d_sensitivity_reference(x, y, fps))


@SETTINGS
@given(st.lists(st.tuples(st.floats(0, 3, allow_nan=False), st.floats(0, 1)), max_size=12),
       st.lists(st.floats(0, 4, allow_nan=False), max_size=8))
def test_interpolation_equals_reference_on_arbitrary_monotone_curves(steps, fps):
    x = np.cumsum([dx for dx, _ in steps])  # non-decreasing, with repeats when dx == 0
    y = np.cumsum([dy for _, dy in steps])
    np.testing.assert_allclose(interpolate_sensitivity(x, y, fps),
                               interpolate_sensitivity_reference(x, y, fps), rtol=0, atol=1e-12)


@SETTINGS
@given(st.lists(st.sampled_from([0.0, -0.0, 0.1, 0.5, 0.5000001, 1.0, -2.0]), max_size=40)
       | st.lists(st.floats(-10, 10, allow_nan=False), max_size=40))
def test_fast_stable_order_equals_numpy_stable_argsort(scores):
    scores = np.array(scores, dtype=np.float64)
    np.testing.assert_array_equal(_stable_descending_order(scores),
                                  np.argsort(-scores, kind='stable'))


def test_stable_order_with_many_ties_at_scale():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, 20000).astype(np.float64) / 7
    np.testing.assert_array_equal(_stable_descending_order(scores),
                                  np.argsort(-scores, kind='stable'))


@SETTINGS
@given(froc_inputs(), st.data())
def test_lesion_subsets_equal_froc_curve_on_filtered_ground_truth(inputs, data):
    boxes, gts = inputs['boxes_per_image'], inputs['gts_per_image']
    masks = [np.array(data.draw(st.lists(st.booleans(), min_size=len(g), max_size=len(g))),
                      dtype=bool) for g in gts]
    kwargs = dict(iou_thr=inputs['iou_thr'], legacy_plus_one=inputs['legacy_plus_one'])
    for mode in ('false_positive', 'ignore'):
        curves = lesion_subset_froc_curves(boxes, gts, {'subset': masks, 'all': [
            np.ones(len(g), dtype=bool) for g in gts]}, out_of_subset_detections=mode, **kwargs)
        whole = froc_curve(boxes, gts, **kwargs)
        np.testing.assert_array_equal(curves['all'].sensitivity, whole.sensitivity)
        np.testing.assert_array_equal(curves['all'].fp_per_image, whole.fp_per_image)
        if not any(m.any() for m in masks):
            assert curves['subset'] is None
            continue
        ignored = [g[~m] for g, m in zip(gts, masks)] if mode == 'ignore' else None
        sensitivity, fp_per_image = froc_curve_reference(
            boxes, [g[m] for g, m in zip(gts, masks)], ignored_gts_per_image=ignored, **kwargs)
        np.testing.assert_array_equal(curves['subset'].sensitivity, sensitivity)
        np.testing.assert_array_equal(curves['subset'].fp_per_image, fp_per_image)
        assert curves['subset'].num_gts == sum(int(m.sum()) for m in masks)

"""draw_lesion_overlay: display window, hit / false-positive colours as FROC counts hits."""
import numpy as np
import pytest

from mp3d_mmdet.visualization import SOFT_TISSUE_WINDOW, draw_lesion_overlay, window_hu
from mp3d_mmdet.visualization.lesion_overlay import GT_COLOR, HIT_COLOR, MISS_COLOR

SLICE = np.full((60, 100), -1000.0)  # air: black in the soft-tissue window
GT = np.array([[10.0, 10.0, 19.0, 19.0]])


def draw(pred_boxes, pred_scores=None, **kwargs):
    kwargs.setdefault('legend', False)
    return draw_lesion_overlay(SLICE, GT, np.array(pred_boxes, np.float64), pred_scores,
                               **kwargs)


def test_window_hu():
    assert SOFT_TISSUE_WINDOW == (-160.0, 240.0)
    grey = window_hu(np.array([[-1000.0, -160.0, 40.0, 240.0, 3000.0]]))
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, [[0, 0, 127, 255, 255]])


def test_ground_truth_hit_and_false_positive_colours():
    canvas = draw([[10, 10, 19, 19], [60, 30, 80, 50]], [0.9, 0.8])
    assert canvas.shape == (60, 100, 3) and canvas.dtype == np.uint8
    assert tuple(canvas[19, 19]) == HIT_COLOR      # the hit, drawn over the ground truth
    assert tuple(canvas[50, 80]) == MISS_COLOR     # far from any ground truth
    assert tuple(canvas[15, 9]) == GT_COLOR        # the 2-px ground-truth edge beside the hit
    assert tuple(canvas[35, 40]) == (0, 0, 0)      # air


@pytest.mark.parametrize('legacy_plus_one,colour', [(True, HIT_COLOR), (False, MISS_COLOR)])
def test_hit_criterion_is_the_froc_metrics(legacy_plus_one, colour):
    # 10 x 5 of a 10 x 10 lesion with +1-pixel widths: IoU 0.5, a hit as the published
    # evaluation counts it; continuous widths 9 x 4 of 9 x 9: IoU 0.44, a false positive
    canvas = draw([[10, 10, 19, 14]], [0.9], legacy_plus_one=legacy_plus_one)
    assert tuple(canvas[14, 19]) == colour
    assert tuple(draw([[10, 10, 19, 14]], [0.9], iou_thr=0.51)[14, 19]) == MISS_COLOR


def test_detections_below_the_score_threshold_are_not_drawn():
    canvas = draw([[60, 30, 80, 50]], [0.2], score_thr=0.3)
    assert tuple(canvas[50, 80]) == (0, 0, 0)


def test_upscale_and_scale_bar():
    canvas = draw_lesion_overlay(SLICE, upscale=2, legend=False, pixel_spacing_mm=1.0)
    assert canvas.shape == (120, 200, 3)
    # 200 px at 0.5 mm/px: a fifth of the width is 20 mm -> a 20 mm bar of 40 px, ending 8 px
    # from the right edge, 10 px above the bottom
    row = canvas[110, :, 0]
    assert (row[152:193] == 255).all() and row[150] == 0 and row[194] == 0


def test_bad_input():
    with pytest.raises(ValueError, match=r'hu must be a 2D \(H, W\) slice, got shape '
                       r'\(1, 60, 100\)'):
        draw_lesion_overlay(SLICE[None])
    with pytest.raises(ValueError, match='pred_scores has 1 entries for 2 pred_boxes'):
        draw([[0, 0, 5, 5], [1, 1, 6, 6]], [0.5])
    with pytest.raises(ValueError, match='pixel_spacing_mm must be > 0'):
        draw_lesion_overlay(SLICE, pixel_spacing_mm=0.0)

"""Box overlaps: the legacy +1 pixel convention (published DeepLesion code) and continuous one,
2D IoU and the 3D overlaps of LENS."""
import numpy as np
import pytest

from mp3d_mmdet.structures import aligned_box_iou, as_boxes, box_iou, overlap_from_columns


def test_legacy_plus_one_counts_inclusive_pixels():
    # [0, 9] covers 10 pixels; [5, 14] overlaps it on pixels 5..9 -> 5 x 10 = 50 of 150
    iou = box_iou(np.array([[0, 0, 9, 9]]), np.array([[5, 0, 14, 9]]), legacy_plus_one=True)
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(50 / 150)


def test_continuous_coordinates():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]), legacy_plus_one=False)
    assert iou[0, 0] == pytest.approx(50 / 150)


def test_conventions_differ_on_touching_and_small_boxes():
    a, b = np.array([[0, 0, 1, 1]]), np.array([[1, 1, 2, 2]])
    # legacy: 2x2-pixel boxes sharing pixel (1, 1): 1 / (4 + 4 - 1)
    assert box_iou(a, b, legacy_plus_one=True)[0, 0] == pytest.approx(1 / 7)
    assert box_iou(a, b, legacy_plus_one=False)[0, 0] == 0.0
    # gt 4x4 px, box its top half: legacy 8/16 = 0.5; continuous 3/9
    gt, half = np.array([[0, 0, 3, 3]]), np.array([[0, 0, 3, 1]])
    assert box_iou(half, gt, legacy_plus_one=True)[0, 0] == 0.5
    assert box_iou(half, gt, legacy_plus_one=False)[0, 0] == pytest.approx(1 / 3)


def test_degenerate_boxes():
    point = np.array([[3, 3, 3, 3]])
    assert box_iou(point, point, legacy_plus_one=True)[0, 0] == 1.0  # one pixel
    assert box_iou(point, point, legacy_plus_one=False)[0, 0] == 0.0  # empty union -> 0


def test_pairwise_shapes_and_values():
    boxes1 = np.array([[0, 0, 9, 9], [20, 20, 29, 29]], dtype=np.float32)
    boxes2 = np.array([[0, 0, 9, 9], [0, 0, 9, 4], [100, 100, 110, 110]])
    iou = box_iou(boxes1, boxes2, legacy_plus_one=True)
    assert iou.dtype == np.float64
    np.testing.assert_allclose(iou, [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), boxes2, legacy_plus_one=True).shape == (0, 3)
    assert box_iou(boxes1, np.zeros((0,)), legacy_plus_one=True).shape == (2, 0)
    np.testing.assert_array_equal(aligned_box_iou(boxes1, boxes2[:2], legacy_plus_one=True),
                                  [1.0, 0.0])


def test_bad_shape():
    with pytest.raises(ValueError, match=r'boxes1 must have shape \(k, 4\) \[x1, y1, x2, y2\]'):
        box_iou(np.zeros((2, 5)), np.zeros((1, 4)), legacy_plus_one=True)
    with pytest.raises(ValueError, match='last dimension of 4'):
        aligned_box_iou(np.zeros((2, 3)), np.zeros((2, 4)), legacy_plus_one=True)


def test_the_convention_must_be_named():
    with pytest.raises(TypeError, match='legacy_plus_one'):
        box_iou(np.zeros((1, 4)), np.zeros((1, 4)))


def test_as_boxes_checks_shape_values_and_order():
    assert as_boxes([]).shape == (0, 4) and as_boxes(np.zeros((0, 5)), columns=5).shape == (0, 5)
    boxes = np.array([[0., 1., 2., 3., 0.5]])
    assert as_boxes(boxes, columns=5) is boxes  # float64 (k, 5): no copy
    with pytest.raises(ValueError, match=r'^dets must have shape \(k, 5\) \[x1, y1, x2, y2, '
                       r'score\], got \(1, 4\)'):
        as_boxes(np.zeros((1, 4)), 'dets', columns=5)
    with pytest.raises(ValueError, match=r'^gts\[2\] has a non-finite value in row 1: '):
        as_boxes([[0, 0, 1, 1], [0, np.nan, 1, 1]], 'gts[2]')
    with pytest.raises(ValueError, match=r'has an inverted box \(x2 < x1 or y2 < y1\) in row 0: '
                       r'\[5.0, 0.0, 1.0, 1.0\]'):
        as_boxes([[5, 0, 1, 1]])


def test_continuous_iou_hand_computed():
    a, a2 = [10.0, 10.0, 30.0, 20.0], [11.0, 10.0, 31.0, 21.0]
    iou = box_iou(np.array([a, [50.0, 50.0, 60.0, 60.0]]),
                  np.array([a2, [20.0, 10.0, 40.0, 20.0]]), legacy_plus_one=False)
    # a vs a2: inter 19 x 10 = 190, union 200 + 220 - 190 = 230
    assert iou[0, 0] == pytest.approx(190 / 230)
    assert iou[0, 1] == pytest.approx(100 / 300)
    assert iou[1].tolist() == [0.0, 0.0]


def _overlap_3d(a, b, metric, legacy_plus_one=True):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(overlap_from_columns(a[:3], a[3:], b[:3], b[3:],
                                      legacy_plus_one=legacy_plus_one, metric=metric))


def test_3d_overlaps_count_inclusive_voxels():
    det, gt = [0, 0, 0, 4, 4, 4], [2, 0, 0, 11, 4, 4]  # 125 and 250 voxels, 3 x 5 x 5 shared
    assert _overlap_3d(det, gt, 'iou') == pytest.approx(75 / (125 + 250 - 75))
    assert _overlap_3d(det, gt, 'iobb') == pytest.approx(75 / 125)
    assert _overlap_3d(det, gt, 'iogt') == pytest.approx(75 / 250)
    assert _overlap_3d(det, gt, 'iobbgt') == pytest.approx(75 / 125)
    # a one-voxel box is 1 voxel, not 0
    assert _overlap_3d([3, 3, 3, 3, 3, 3], gt, 'iobb') == 1.0
    assert _overlap_3d([3, 3, 3, 3, 3, 3], gt, 'iobb', legacy_plus_one=False) == 0.0


def test_3d_boxes_touching_on_one_face():
    # inclusive indices: x 0..4 and 4..8 share the voxel plane x = 4 (1 x 5 x 5 voxels)
    assert _overlap_3d([0, 0, 0, 4, 4, 4], [4, 0, 0, 8, 4, 4], 'iou') == pytest.approx(25 / 225)
    assert _overlap_3d([0, 0, 0, 4, 4, 4], [4, 0, 0, 8, 4, 4], 'iou',
                       legacy_plus_one=False) == 0.0  # continuous: the faces only touch
    # x 0..4 and 5..9 are neighbours without a shared voxel
    assert _overlap_3d([0, 0, 0, 4, 4, 4], [5, 0, 0, 9, 4, 4], 'iobbgt') == 0.0


def test_2d_iou_is_the_2d_overlap_bit_for_bit():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 50, (100, 2, 2)), axis=1).reshape(100, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 50, (100, 2, 2)), axis=1).reshape(100, 4)[:, [0, 2, 1, 3]]
    for plus_one in (True, False):
        expected = overlap_from_columns((a[:, 0], a[:, 1]), (a[:, 2], a[:, 3]),
                                        (b[:, 0], b[:, 1]), (b[:, 2], b[:, 3]),
                                        legacy_plus_one=plus_one, metric='iou')
        np.testing.assert_array_equal(aligned_box_iou(a, b, legacy_plus_one=plus_one), expected)
    with pytest.raises(ValueError, match="overlap metric must be one of .* got 'dice'"):
        overlap_from_columns((0.0,), (1.0,), (0.0,), (1.0,), legacy_plus_one=True,
                             metric='dice')


def test_as_boxes_checks_3d_layouts():
    assert as_boxes([[0, 0, 0, 1, 1, 1]], columns=6).shape == (1, 6)
    assert as_boxes([], columns=7).shape == (0, 7)
    with pytest.raises(ValueError, match=r'gts must have shape \(k, 6\) \[x1, y1, z1, x2, y2, '
                       r'z2\], got \(1, 4\)'):
        as_boxes([[0, 0, 1, 1]], 'gts', columns=6)
    with pytest.raises(ValueError, match=r'an inverted box \(x2 < x1, y2 < y1 or z2 < z1\) in '
                       'row 1'):
        as_boxes([[0, 0, 0, 1, 1, 1, 0.5], [0, 0, 5, 1, 1, 4, 0.5]], columns=7)

"""COCO-style AP at IoU 0.5 through pycocotools, hand-computed."""
import numpy as np
import pytest

from mp3d_mmdet.evaluation.functional import coco_ap

A = [0, 0, 9, 9]
B = [20, 20, 29, 29]
FAR = [200, 200, 209, 209]


def test_ap_hand_computed():
    # ranked: TP (P=1, R=.5), FP (P=.5, R=.5), TP (P=2/3, R=1)
    # interpolated precision: 1 for the 51 recall points 0..0.50, 2/3 for the 50 above
    boxes = [np.array([A + [0.9]]), np.array([FAR + [0.8], B + [0.7]])]
    ap = coco_ap(boxes, [np.array([A]), np.array([B])])
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_perfect_empty_and_images_without_lesions():
    gts = [np.array([A]), np.zeros((0, 4))]
    assert coco_ap([np.array([A + [0.5]]), np.zeros((0, 5))], gts) == pytest.approx(1.0)
    assert coco_ap([np.zeros((0, 5)), np.zeros((0, 5))], gts) == 0.0
    # a higher-ranked FP on the lesion-free image: P = 1/2 at full recall
    ap = coco_ap([np.array([A + [0.5]]), np.array([FAR + [0.9]])], gts)
    assert ap == pytest.approx(0.5)


def test_plus_one_convention_is_applied():
    gt, half = [0, 0, 3, 3], [0, 0, 3, 1]  # legacy IoU 0.5, continuous 1/3
    boxes, gts = [np.array([half + [0.9]])], [np.array([gt])]
    assert coco_ap(boxes, gts, legacy_plus_one=True) == pytest.approx(1.0)
    assert coco_ap(boxes, gts, legacy_plus_one=False) == 0.0


def test_more_than_100_detections_per_image_all_count():
    # 150 FPs ranked above the only hit: COCO's default maxDets=100 would drop the hit
    fps = np.array([[200 + i, 200, 209 + i, 209, 0.9] for i in range(150)], dtype=np.float64)
    boxes = [np.concatenate([fps, [A + [0.1]]])]
    assert coco_ap(boxes, [np.array([A])]) == pytest.approx(1 / 151)


def test_bad_input():
    with pytest.raises(ValueError, match='no ground-truth box'):
        coco_ap([np.zeros((0, 5))], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match='one entry per image'):
        coco_ap([np.zeros((0, 5))], [])
    with pytest.raises(ValueError, match=r'boxes_per_image\[0\] must have shape \(k, 5\)'):
        coco_ap([np.zeros((1, 4))], [np.array([A])])


def _coco_ap_by_hand(boxes_per_image, gts_per_image, iou_thr=0.5):
    """COCO's single-class AP written out: greedy per-image matching in score order (best
    IoU among unmatched lesions), global ranking, precision envelope, 101 recall points."""
    from mp3d_mmdet.structures import box_iou
    scores, is_tp = [], []
    for boxes, gts in zip(boxes_per_image, gts_per_image):
        boxes = boxes[np.argsort(-boxes[:, 4], kind='stable')]
        iou = box_iou(boxes[:, :4], gts, legacy_plus_one=True)
        matched = np.zeros(len(gts), dtype=bool)
        for d in range(len(boxes)):
            candidates = np.where(~matched & (iou[d] >= iou_thr), iou[d], -1.0)
            hit = len(gts) > 0 and candidates.max() >= 0
            if hit:
                matched[int(np.argmax(candidates))] = True
            scores.append(boxes[d, 4])
            is_tp.append(hit)
    order = np.argsort(-np.array(scores), kind='stable')
    tp = np.cumsum(np.array(is_tp)[order])
    fp = np.cumsum(~np.array(is_tp)[order])
    recall = tp / sum(len(g) for g in gts_per_image)
    precision = tp / (tp + fp)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side='left')
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in index]))


def test_ap_matches_a_hand_written_coco_ap_on_random_images():
    rng = np.random.default_rng(0)
    boxes_per_image, gts_per_image = [], []
    for _ in range(40):
        gts = rng.uniform(0, 60, (rng.integers(0, 4), 2))
        gts = np.concatenate([gts, gts + rng.uniform(5, 30, gts.shape)], axis=1)
        dets = rng.uniform(0, 60, (rng.integers(0, 12), 2))
        dets = np.concatenate([dets, dets + rng.uniform(5, 30, dets.shape)], axis=1)
        near = gts[rng.integers(0, len(gts), 4)] + rng.normal(0, 3, (4, 4)) if len(gts) else (
            np.zeros((0, 4)))
        near[:, 2:] = np.maximum(near[:, 2:], near[:, :2] + 1)
        dets = np.concatenate([dets, near])
        boxes_per_image.append(np.concatenate([dets, rng.random((len(dets), 1))], axis=1))
        gts_per_image.append(gts)
    expected = _coco_ap_by_hand(boxes_per_image, gts_per_image)
    assert 0.1 < expected < 0.9
    assert coco_ap(boxes_per_image, gts_per_image) == pytest.approx(expected, abs=1e-12)

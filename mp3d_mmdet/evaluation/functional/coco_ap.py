"""COCO-style average precision of single-class detections at one IoU threshold (pycocotools).

The MP3D FPN paper reports ``MAP@0.5`` next to the FROC sensitivities: the COCO AP
(101-point interpolated precision, all object areas) at IoU 0.5 for the one class "lesion".
Ground truth and detections are handed to pycocotools in memory, no file is written.
"""
import contextlib
import io
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ...structures.boxes import as_boxes

__all__ = ['coco_ap']


def coco_ap(boxes_per_image: Sequence[np.ndarray],
            gts_per_image: Sequence[np.ndarray],
            iou_thr: float = 0.5,
            legacy_plus_one: bool = True) -> float:
    """COCO AP at one IoU threshold, one category, every detection of every image counted.

    Args:
        boxes_per_image: one ``(n_i, 5)`` array ``[x1, y1, x2, y2, score]`` per image.
        gts_per_image: one ``(g_i, 4)`` array ``[x1, y1, x2, y2]`` per image.
        iou_thr: the IoU threshold of a true positive, in ``(0, 1]``.
        legacy_plus_one: boxes are handed to pycocotools as ``[x1, y1, w, h]`` with
            ``w = x2 - x1 + 1`` (inclusive pixels, as the FROC's IoU and mmdet 1.x) when True,
            ``w = x2 - x1`` (continuous, as mmdet 2.x+ ``CocoMetric``) when False.

    Returns:
        AP in ``[0, 1]``; 0.0 when there is no detection at all.

    Raises:
        ValueError: mismatched list lengths, malformed arrays, or no ground-truth box.
    """
    if len(boxes_per_image) != len(gts_per_image):
        raise ValueError(f'boxes_per_image and gts_per_image must have one entry per image, got '
                         f'{len(boxes_per_image)} and {len(gts_per_image)}')
    if not 0.0 < iou_thr <= 1.0:
        raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
    extra = 1.0 if legacy_plus_one else 0.0
    images, gt_anns, dt_anns = [], [], []
    max_dets = 0
    for image_id, (boxes, gts) in enumerate(zip(boxes_per_image, gts_per_image), start=1):
        boxes = as_boxes(boxes, f'boxes_per_image[{image_id - 1}]', columns=5)
        gts = as_boxes(gts, f'gts_per_image[{image_id - 1}]')
        images.append({'id': image_id})
        max_dets = max(max_dets, len(boxes))
        # [x1, y1, w, h]; annotation ids start at 1 (COCOeval uses 0 for "unmatched")
        gt_xywh = np.concatenate([gts[:, :2], gts[:, 2:4] - gts[:, :2] + extra], axis=1)
        gt_anns += [{'id': len(gt_anns) + k + 1, 'image_id': image_id, 'category_id': 1,
                     'bbox': bbox, 'area': bbox[2] * bbox[3], 'iscrowd': 0}
                    for k, bbox in enumerate(gt_xywh.tolist())]
        dt_xywh = np.concatenate([boxes[:, :2], boxes[:, 2:4] - boxes[:, :2] + extra], axis=1)
        dt_anns += [{'id': len(dt_anns) + k + 1, 'image_id': image_id, 'category_id': 1,
                     'bbox': bbox, 'area': bbox[2] * bbox[3], 'iscrowd': 0, 'score': score}
                    for k, (bbox, score) in enumerate(zip(dt_xywh.tolist(),
                                                          boxes[:, 4].tolist()))]
    if not gt_anns:
        raise ValueError('gts_per_image holds no ground-truth box: AP is undefined')
    if not dt_anns:
        return 0.0

    categories = [dict(id=1, name='lesion')]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = dict(images=images, annotations=gt_anns, categories=categories)
        coco_gt.createIndex()
        coco_dt = COCO()
        coco_dt.dataset = dict(images=images, annotations=dt_anns, categories=categories)
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType='bbox')
        evaluator.params.iouThrs = np.array([iou_thr], dtype=np.float64)
        evaluator.params.maxDets = [max(max_dets, 1)]  # count every detection of every image
        evaluator.params.areaRng = evaluator.params.areaRng[:1]  # 'all' only (4x faster)
        evaluator.params.areaRngLbl = evaluator.params.areaRngLbl[:1]
        evaluator.evaluate()
        evaluator.accumulate()
    # precision: [T iou thresholds, R recall points, K categories, A area ranges, M max dets]
    precision = evaluator.eval['precision'][0, :, 0, 0, -1]
    valid = precision > -1
    return float(precision[valid].mean()) if valid.any() else 0.0

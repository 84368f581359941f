"""N-channel (N = 3, 5, 9, 11) test images and transform inputs for the transform tests."""
from typing import Sequence

import numpy as np
from mmdet.structures.bbox import HorizontalBoxes

CHANNELS = [3, 5, 9, 11]


def channel_image(num_channels: int, height: int = 20, width: int = 30) -> np.ndarray:
    """float32 (H, W, N): a distinct random pattern per channel."""
    rng = np.random.default_rng(num_channels)
    return rng.uniform(0.0, 255.0, (height, width, num_channels)).astype(np.float32)


def results_of(img: np.ndarray,
               boxes: Sequence[Sequence[float]] = ((3.0, 2.0, 12.0, 9.0), )) -> dict:
    """mmcv transform input: ``img`` with ``boxes`` (x1, y1, x2, y2), label 0, not ignored."""
    return dict(img=img.copy(), img_shape=img.shape[:2], ori_shape=img.shape[:2],
                gt_bboxes=HorizontalBoxes(np.array(boxes, np.float32)),
                gt_bboxes_labels=np.zeros(len(boxes), np.int64),
                gt_ignore_flags=np.zeros(len(boxes), bool))

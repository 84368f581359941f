"""The paper's DeepLesion data pipelines, as mmdet transform configs (copy into configs).

Training (MP3D paper, Sec. 3.1): 9 slices at 2.5 mm, HU clipped to [-1024, 1050]; horizontal
and vertical flips; multi-scale resize to {448, 512, 576}. Test: resize to 512.

* The two flips are one ``RandomFlip`` with ``direction=['horizontal', 'vertical',
  'diagonal']`` and ``prob=[0.25, 0.25, 0.25]``: "diagonal" is both flips, so each flip
  happens independently with probability 0.5 -- the same distribution as two chained 0.5
  flips, but ``flip``/``flip_direction`` in the metadata stay exact (a second ``RandomFlip``
  would overwrite the first one's record).
* ``keep_ratio=True`` maps a 512 x 512 (or 768 x 768) image onto the square scale. The resize
  is :class:`mp3d_mmdet.datasets.transforms.SliceWiseResize`: mmdet's ``Resize`` with the
  ``cv2.resize`` done slice by slice, so that the image ``LoadCTSlices`` builds in
  ``(N, H, W)`` memory order reaches ``PackDetInputs`` in that order (no interleaving and
  transposing back; ``tools/benchmark/loader_speed.py``).
* Every transform used here handles any number of channels: ``mmcv.imresize`` (cv2.resize)
  and ``mmcv.imflip`` (np.flip) are channel-agnostic (checked for N = 3, 5, 9, 11 in
  ``tests/test_datasets/test_transforms/test_multichannel_augmentation.py``). mmdet's ``Pad``
  is not: beyond 4 channels it raises even with its default ``pad_val`` (cv2.copyMakeBorder
  takes at most 4 border values); use
  :class:`mp3d_mmdet.datasets.transforms.MultiChannelPad` if an image-level pad is needed (the
  default pipeline needs none: ``DetDataPreprocessor`` pads the batch).

With their defaults, :func:`deeplesion_train_pipeline` / :func:`deeplesion_test_pipeline`
return exactly the ``train_pipeline`` / ``test_pipeline`` of
``configs/_base_/datasets/deeplesion.py`` (a test keeps the two equal).
"""
from typing import List, Sequence, Tuple

__all__ = ['DEEPLESION_META_KEYS', 'deeplesion_train_pipeline', 'deeplesion_test_pipeline']

#: meta keys packed into each data sample (the FROC metric reads ``instances`` and
#: ``slice_interval``; ``instances`` keep the original-image boxes).
DEEPLESION_META_KEYS: Tuple[str, ...] = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                                         'scale_factor', 'flip', 'flip_direction',
                                         'instances', 'slice_interval', 'pixel_spacing')


def deeplesion_train_pipeline(num_slices: int = 9,
                              slice_interval: float = 2.5,
                              hu_window: Tuple[float, float] = (-1024, 1050),
                              scales: Sequence[int] = (448, 512, 576),
                              flip_slice_order_prob: float = 0.0) -> List[dict]:
    """The paper's training pipeline (see the module docstring for the default list).

    Args:
        num_slices (int): input slices N (odd).
        slice_interval (float): channel spacing in mm.
        hu_window (tuple[float, float]): HU clip window.
        scales (Sequence[int]): square training scales, one drawn per sample.
        flip_slice_order_prob (float): probability of reversing the slice order.

    Returns:
        list[dict]: transform configs.
    """
    return [
        dict(type='LoadCTSlices', num_slices=num_slices, slice_interval=slice_interval,
             hu_window=tuple(hu_window), flip_slice_order_prob=flip_slice_order_prob),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomChoiceResize', scales=[(int(s), int(s)) for s in scales],
             keep_ratio=True, resize_type='SliceWiseResize'),
        dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
             direction=['horizontal', 'vertical', 'diagonal']),
        dict(type='PackDetInputs', meta_keys=DEEPLESION_META_KEYS),
    ]


def deeplesion_test_pipeline(num_slices: int = 9,
                             slice_interval: float = 2.5,
                             hu_window: Tuple[float, float] = (-1024, 1050),
                             scale: int = 512) -> List[dict]:
    """The paper's test pipeline (see the module docstring for the default list).

    Args:
        num_slices (int): input slices N (odd).
        slice_interval (float): channel spacing in mm.
        hu_window (tuple[float, float]): HU clip window.
        scale (int): square test scale.

    Returns:
        list[dict]: transform configs.
    """
    return [
        dict(type='LoadCTSlices', num_slices=num_slices, slice_interval=slice_interval,
             hu_window=tuple(hu_window)),
        dict(type='SliceWiseResize', scale=(int(scale), int(scale)), keep_ratio=True),
        dict(type='PackDetInputs', meta_keys=DEEPLESION_META_KEYS),
    ]

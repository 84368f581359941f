"""RGBToSlices: a BGR-loaded colour image -> R, G, B slices, through mmdet's COCO pipeline."""
import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS
from mmengine.registry import init_default_scope

from mp3d_mmdet.datasets.transforms import SLICE_ORDER, RGBToSlices


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def bgr_image():
    """uint8 (4, 5, 3) in mmcv's BGR order: B = 10 + i, G = 100 + i, R = 200 + i (i = pixel)."""
    i = np.arange(20, dtype=np.uint8).reshape(4, 5)
    return np.stack([10 + i, 100 + i, 200 + i], axis=-1)


def test_bgr_channels_become_r_g_b_slices_as_float32():
    img = bgr_image()
    out = RGBToSlices()(dict(img=img.copy()))
    slices = out['img']
    assert slices.shape == (4, 5, 3) and slices.dtype == np.float32
    assert slices.flags.c_contiguous
    i = np.arange(20, dtype=np.float32).reshape(4, 5)
    np.testing.assert_array_equal(slices[..., 0], 200 + i)  # slice 0 = R = BGR channel 2
    np.testing.assert_array_equal(slices[..., 1], 100 + i)  # slice 1 = G (key slice)
    np.testing.assert_array_equal(slices[..., 2], 10 + i)  # slice 2 = B = BGR channel 0
    assert out['slice_order'] == SLICE_ORDER == ('R', 'G', 'B')
    # no normalisation: the [0, 255] scale of the CT loader, exact values
    full = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_array_equal(RGBToSlices()(dict(img=full))['img'], [[[255.0, 128.0, 0.0]]])


def test_rgb_input_order_and_float_input():
    img = bgr_image()[..., ::-1].copy()  # now R, G, B
    out = RGBToSlices(input_order='rgb')(dict(img=img))['img']
    np.testing.assert_array_equal(out, img.astype(np.float32))
    float_bgr = bgr_image().astype(np.float64)  # LoadImageFromFile(to_float32=True) style
    out = RGBToSlices()(dict(img=float_bgr))['img']
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, float_bgr[..., ::-1])


@pytest.mark.parametrize('img,match', [
    (np.zeros((4, 5), np.uint8), r'H x W x 3 colour image, got \(4, 5\)'),
    (np.zeros((4, 5, 4), np.uint8), r'got \(4, 5, 4\)'),
    (np.zeros((4, 5, 1), np.uint8), r'got \(4, 5, 1\)'),
    (np.zeros((4, 5, 3), np.uint16), 'got dtype uint16'),
])
def test_bad_images_are_rejected(img, match):
    with pytest.raises(ValueError, match=match):
        RGBToSlices()(dict(img=img, img_path='grey.png'))


def test_bad_input_order():
    with pytest.raises(ValueError, match="input_order must be one of"):
        RGBToSlices(input_order='gbr')


def test_coco_pipeline_load_resize_flip_pack(tmp_path):
    # A PNG written by cv2 (BGR) read back by mmcv, then mmdet's COCO-style augmentation.
    path = str(tmp_path / 'img.png')
    img = np.zeros((8, 12, 3), np.uint8)
    img[:, :6] = (10, 20, 30)  # left half: B=10, G=20, R=30
    img[:, 6:] = (40, 50, 60)
    cv2.imwrite(path, img)
    pipeline = Compose([TRANSFORMS.build(t) for t in [
        dict(type='LoadImageFromFile'),
        dict(type='RGBToSlices'),
        dict(type='Resize', scale=(24, 16), keep_ratio=True),
        dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        dict(type='PackDetInputs', meta_keys=('img_path', 'img_shape', 'flip')),
    ]])
    out = pipeline(dict(img_path=path))
    inputs = out['inputs']
    assert inputs.shape == (3, 16, 24) and inputs.dtype == torch.float32
    assert out['data_samples'].flip is True
    # after the flip the right half of the image is on the left
    assert inputs[:, :, 0].tolist() == [[60.0] * 16, [50.0] * 16, [40.0] * 16]
    assert inputs[:, :, -1].tolist() == [[30.0] * 16, [20.0] * 16, [10.0] * 16]
    assert repr(RGBToSlices()) == "RGBToSlices(input_order='bgr')"

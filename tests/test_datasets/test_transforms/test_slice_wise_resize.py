"""SliceWiseResize: mmdet's Resize results, computed plane by plane on channel-planar images."""
import numpy as np
import pytest
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.registry import init_default_scope

from mp3d_mmdet.datasets import SliceWiseResize, is_channel_planar


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')  # RandomChoiceResize builds its resize_type through it


def planar_image(num_channels, height=40, width=30, seed=0):
    """float32 (H, W, N) view of a C-contiguous (N, H, W) array, a random pattern per plane."""
    rng = np.random.default_rng(seed)
    planes = rng.uniform(0.0, 255.0, (num_channels, height, width)).astype(np.float32)
    return planes.transpose(1, 2, 0)


def results_of(img):
    boxes = HorizontalBoxes(np.array([[3.0, 2.0, 12.0, 9.0], [0.0, 5.0, 29.0, 39.0]],
                                     np.float32))
    return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], gt_bboxes=boxes,
                gt_bboxes_labels=np.zeros(2, np.int64), gt_ignore_flags=np.zeros(2, bool))


def both(cfg, img):
    """(mmdet Resize output, SliceWiseResize output) for the same config and image."""
    mmdet_out = TRANSFORMS.build(dict(cfg, type='Resize'))(results_of(img.copy()))
    ours = TRANSFORMS.build(dict(cfg, type='SliceWiseResize'))(results_of(img))
    return mmdet_out, ours


@pytest.mark.parametrize('num_channels', [3, 9, 11])
@pytest.mark.parametrize('cfg', [
    dict(scale=(45, 34), keep_ratio=False),
    dict(scale=(576, 576), keep_ratio=True),
    dict(scale=(448, 448), keep_ratio=True),
    dict(scale_factor=0.5, keep_ratio=True),
    dict(scale=(60, 50), keep_ratio=True, interpolation='area'),
])
def test_same_results_as_mmdet_resize(num_channels, cfg):
    img = planar_image(num_channels)
    mmdet_out, ours = both(cfg, img)
    assert ours['img'].shape == mmdet_out['img'].shape
    assert is_channel_planar(ours['img'])
    # OpenCV's 1-channel and N-channel kernels differ in the last bits
    np.testing.assert_allclose(ours['img'], mmdet_out['img'], rtol=0, atol=1e-3)
    for key in ('img_shape', 'scale_factor', 'keep_ratio', 'scale'):
        assert ours[key] == mmdet_out[key], key
    np.testing.assert_array_equal(ours['gt_bboxes'].numpy(), mmdet_out['gt_bboxes'].numpy())


def test_nearest_is_bit_exact():
    img = planar_image(9)
    mmdet_out, ours = both(dict(scale=(71, 52), keep_ratio=False, interpolation='nearest'), img)
    np.testing.assert_array_equal(ours['img'], mmdet_out['img'])


def test_same_size_returns_the_image_itself():
    img = planar_image(9, 32, 32)
    mmdet_out, ours = both(dict(scale=(32, 32), keep_ratio=True), img)
    assert ours['img'] is img  # cv2.resize would only copy it
    np.testing.assert_array_equal(ours['img'], mmdet_out['img'])
    assert ours['scale_factor'] == (1.0, 1.0) and ours['img_shape'] == (32, 32)


@pytest.mark.parametrize('img', [
    np.random.default_rng(1).uniform(0, 255, (40, 30, 9)).astype(np.float32),  # interleaved
    np.random.default_rng(2).uniform(0, 255, (40, 30, 1)).astype(np.float32),
    np.flip(planar_image(9), axis=1),  # a RandomFlip view: neither layout
])
def test_other_layouts_go_through_mmdet_resize_unchanged(img):
    mmdet_out, ours = both(dict(scale=(45, 34), keep_ratio=False), img)
    np.testing.assert_array_equal(ours['img'], mmdet_out['img'])
    assert ours['scale_factor'] == mmdet_out['scale_factor']


def test_dtypes_opencv_lacks_go_through_mmdet_resize():
    img = np.arange(9 * 40 * 30, dtype=np.int64).reshape(9, 40, 30).transpose(1, 2, 0)
    mmdet_out, ours = both(dict(scale=(45, 34), keep_ratio=False, interpolation='nearest'), img)
    np.testing.assert_array_equal(ours['img'], mmdet_out['img'])


def test_area_shrink_of_many_slices_works_where_mmdet_resize_fails():
    import cv2
    img = planar_image(9)  # 40 x 30 -> 27 x 20: a non-integer shrink
    cfg = dict(scale=(20, 27), keep_ratio=False, interpolation='area')
    with pytest.raises(cv2.error):  # OpenCV's general INTER_AREA shrink: at most 4 channels
        TRANSFORMS.build(dict(cfg, type='Resize'))(results_of(img.copy()))
    out = TRANSFORMS.build(dict(cfg, type='SliceWiseResize'))(results_of(img))
    assert out['img'].shape == (27, 20, 9)
    for c in (0, 8):
        np.testing.assert_array_equal(
            out['img'][..., c],
            cv2.resize(np.ascontiguousarray(img[..., c]), (20, 27), interpolation=cv2.INTER_AREA))


def test_as_the_resize_type_of_random_choice_resize():
    resize = TRANSFORMS.build(dict(type='RandomChoiceResize', scales=[(60, 60)], keep_ratio=True,
                                   resize_type='SliceWiseResize'))
    assert isinstance(resize.resize, SliceWiseResize)
    out = resize(results_of(planar_image(9)))
    assert out['img'].shape == (60, 45, 9) and is_channel_planar(out['img'])
    np.testing.assert_allclose(out['scale_factor'], (1.5, 1.5))


def test_pack_det_inputs_takes_the_planes_without_a_copy():
    img = planar_image(9)
    out = TRANSFORMS.build(dict(type='SliceWiseResize', scale=(45, 34)))(results_of(img))
    packed = TRANSFORMS.build(dict(type='PackDetInputs'))(out)
    assert packed['inputs'].shape == (9, 34, 45)
    assert np.shares_memory(packed['inputs'].numpy(), out['img'])

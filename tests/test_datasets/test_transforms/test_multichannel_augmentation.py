"""The paper's augmentation with mmdet transforms on N-channel CT inputs (N = 3, 5, 9, 11).

Checks each transform of the recommended pipelines channel by channel and runs the full
pipelines with boxes followed through flips and resizes (padding: ``test_multichannel_pad``).
"""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS
from mmengine.registry import init_default_scope

from helpers.multichannel_inputs import CHANNELS, channel_image, results_of
from helpers.paper_config import paper_config, paper_pipelines


@pytest.fixture(autouse=True)
def mmdet_scope():
    # the runner sets default_scope='mmdet'; RandomChoiceResize builds its resize_type through it
    init_default_scope('mmdet')


@pytest.mark.parametrize('num_channels', CHANNELS)
def test_resize_resizes_every_channel_independently(num_channels):
    img = channel_image(num_channels)
    out = TRANSFORMS.build(dict(type='Resize', scale=(45, 34), keep_ratio=False))(results_of(img))
    assert out['img'].shape == (34, 45, num_channels)
    for c in range(num_channels):  # (cv2's N-channel and 1-channel kernels round differently)
        np.testing.assert_allclose(out['img'][..., c], cv2.resize(img[..., c], (45, 34)),
                                   rtol=0, atol=1e-3)
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[4.5, 3.4, 18.0, 15.3]], rtol=1e-6)


@pytest.mark.parametrize('num_channels', CHANNELS)
@pytest.mark.parametrize('scale', [448, 512, 576])
def test_random_choice_resize_to_the_paper_scales(num_channels, scale):
    img = channel_image(num_channels, 64, 64)
    out = TRANSFORMS.build(dict(type='RandomChoiceResize', scales=[(scale, scale)],
                                keep_ratio=True))(results_of(img))
    assert out['img'].shape == (scale, scale, num_channels)
    for c in (0, num_channels // 2, num_channels - 1):
        np.testing.assert_allclose(out['img'][..., c], cv2.resize(img[..., c], (scale, scale)),
                                   rtol=0, atol=1e-3)
    np.testing.assert_allclose(out['scale_factor'], (scale / 64, scale / 64))


@pytest.mark.parametrize('num_channels', CHANNELS)
@pytest.mark.parametrize('direction,axes,box', [
    ('horizontal', (1, ), [30 - 12.0, 2.0, 30 - 3.0, 9.0]),
    ('vertical', (0, ), [3.0, 20 - 9.0, 12.0, 20 - 2.0]),
    ('diagonal', (0, 1), [30 - 12.0, 20 - 9.0, 30 - 3.0, 20 - 2.0]),
])
def test_random_flip_flips_every_channel_and_the_boxes(num_channels, direction, axes, box):
    img = channel_image(num_channels)
    out = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0, direction=direction))(
        results_of(img))
    np.testing.assert_array_equal(out['img'], np.flip(img, axis=axes))
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [box])
    assert out['flip'] is True and out['flip_direction'] == direction


def test_the_paper_flip_draws_both_flips_independently():
    flip = TRANSFORMS.build(paper_pipelines()[0][3])
    img = channel_image(9)
    counts = {}
    np.random.seed(0)
    for _ in range(2000):
        direction = flip(results_of(img))['flip_direction']
        counts[direction] = counts.get(direction, 0) + 1
    assert set(counts) == {None, 'horizontal', 'vertical', 'diagonal'}
    assert all(400 < n < 600 for n in counts.values())  # each 1/4: H and V each with p = 0.5


@pytest.mark.parametrize('num_channels', CHANNELS)
def test_pack_det_inputs_gives_channels_first(num_channels):
    img = channel_image(num_channels)
    flipped = np.flip(img, axis=1)  # a non-contiguous view, as RandomFlip returns
    for source in (img, flipped):
        results = results_of(source)
        results['img'] = source
        packed = TRANSFORMS.build(dict(type='PackDetInputs'))(results)
        assert packed['inputs'].shape == (num_channels, 20, 30)
        np.testing.assert_array_equal(packed['inputs'].numpy(), source.transpose(2, 0, 1))


# --------------------------------------------------------------- full pipelines
HEIGHT, WIDTH = 64, 80
ROWS, COLS = (10, 20), (30, 50)  # bright block, pixel rows 10..19 and columns 30..49


def write_block_series(folder, first=1, last=21):
    """Every slice: -1000 HU, with a 1000 HU block at ROWS x COLS (0-based, end-exclusive)."""
    os.makedirs(folder, exist_ok=True)
    image = np.full((HEIGHT, WIDTH), -1000 + 32768, np.uint16)
    image[ROWS[0]:ROWS[1], COLS[0]:COLS[1]] = 1000 + 32768
    for index in range(first, last + 1):
        cv2.imwrite(osp.join(folder, f'{index:03d}.png'), image)


def data_info(folder, key=11, interval=2.5):
    # the DeepLesion pixel convention: box = first..last pixel of the lesion, 0-based
    box = [COLS[0], ROWS[0], COLS[1] - 1, ROWS[1] - 1]
    return dict(img_path=osp.join(folder, f'{key:03d}.png'), img_id=0, series_dir=folder,
                key_slice=key, slice_interval=interval, pixel_spacing=0.8, width=WIDTH,
                height=HEIGHT, instances=[dict(bbox=box, bbox_label=0, ignore_flag=0,
                                               csv_row=2)])


def bright_extent(inputs):
    """``[x_first, y_first, x_last, y_last]`` of the pixels above mid-grey in every channel."""
    mask = (inputs > 127.5).all(dim=0)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)


@pytest.mark.parametrize('num_channels', CHANNELS)
@pytest.mark.parametrize('scale', [448, 576])
@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal', None])
def test_train_pipeline_moves_boxes_with_the_image(tmp_path, num_channels, scale, direction):
    folder = str(tmp_path / 'series')
    write_block_series(folder)
    pipeline = paper_pipelines(num_slices=num_channels)[0]
    pipeline[2]['scales'] = [(scale, scale)]
    if direction is not None:
        pipeline[3] = dict(type='RandomFlip', prob=1.0, direction=direction)
    else:
        pipeline[3] = dict(type='RandomFlip', prob=0.0)
    packed = Compose(pipeline)(data_info(folder))
    factor = min(scale / WIDTH, scale / HEIGHT)
    out_h, out_w = int(HEIGHT * factor + 0.5), int(WIDTH * factor + 0.5)
    assert packed['inputs'].shape == (num_channels, out_h, out_w)
    assert packed['inputs'].dtype == torch.float32
    sample = packed['data_samples']
    assert sample.img_shape == (out_h, out_w) and sample.ori_shape == (HEIGHT, WIDTH)
    assert set(paper_config().meta_keys) <= set(sample.metainfo)
    box = sample.gt_instances.bboxes.numpy()[0]
    # mmdet resizes/flips boxes in the continuous convention (x -> x * s, x -> W - x), the
    # DeepLesion box is first..last pixel: agreement within about one (scaled) pixel
    np.testing.assert_allclose(box, bright_extent(packed['inputs']), atol=factor + 1.0)
    assert sample.instances[0]['bbox'] == [30, 10, 49, 19]  # original coordinates kept


def test_test_pipeline_resizes_to_512(tmp_path):
    folder = str(tmp_path / 'series')
    write_block_series(folder)
    packed = Compose(paper_pipelines()[1])(data_info(folder))
    assert packed['inputs'].shape == (9, 410, 512)  # keep_ratio: 64 x 80 -> 409.6 x 512
    sample = packed['data_samples']
    np.testing.assert_allclose(sample.scale_factor, (512 / 80, 410 / 64))
    assert sample.slice_interval == 2.5 and sample.instances[0]['csv_row'] == 2
    assert 'gt_instances' in sample and len(sample.gt_instances) == 0  # no LoadAnnotations

"""MultiChannelPad against mmdet's Pad, whose limits beyond 3 channels it exists for."""
import cv2
import numpy as np
import pytest
from mmdet.registry import TRANSFORMS

import mp3d_mmdet  # noqa: F401  (registers MultiChannelPad)
from helpers.multichannel_inputs import CHANNELS, channel_image, results_of


@pytest.mark.parametrize('num_channels', [5, 9, 11])
@pytest.mark.parametrize('pad_val', [0, 7, 7.0])
def test_mmdet_pad_breaks_beyond_four_channels(num_channels, pad_val):
    """Upstream limitation that MultiChannelPad exists for: cv2.copyMakeBorder takes at most
    4 border values, so mmdet's Pad fails beyond 4 channels -- even with its default
    ``pad_val=dict(img=0)``."""
    pad = TRANSFORMS.build(dict(type='Pad', size_divisor=32, pad_val=dict(img=pad_val)))
    with pytest.raises(cv2.error):
        pad(results_of(channel_image(num_channels)))


def test_mmdet_pad_float_value_fills_only_the_first_of_three_channels():
    """...and with 3 channels a float pad_val silently pads channels 1, 2 with 0."""
    pad = TRANSFORMS.build(dict(type='Pad', size_divisor=32, pad_val=dict(img=7.0)))
    out = pad(results_of(channel_image(3)))
    np.testing.assert_array_equal(out['img'][-1, -1], [7.0, 0.0, 0.0])


@pytest.mark.parametrize('num_channels', CHANNELS)
@pytest.mark.parametrize('pad_val', [0, 7, 7.5])
def test_multichannel_pad(num_channels, pad_val):
    img = channel_image(num_channels)
    out = TRANSFORMS.build(dict(type='MultiChannelPad', size_divisor=32,
                                pad_val=dict(img=pad_val)))(results_of(img))
    assert out['img'].shape == (32, 32, num_channels) and out['img'].dtype == np.float32
    np.testing.assert_array_equal(out['img'][:20, :30], img)
    assert (out['img'][20:] == np.float32(pad_val)).all()
    assert (out['img'][:, 30:] == np.float32(pad_val)).all()
    assert out['pad_shape'] == (32, 32, num_channels) and out['img_shape'] == (32, 32)
    fixed = TRANSFORMS.build(dict(type='MultiChannelPad', size=(40, 24)))(results_of(img))
    assert fixed['img'].shape == (24, 40, num_channels)

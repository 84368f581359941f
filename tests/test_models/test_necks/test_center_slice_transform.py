"""CenterSliceTransform (CTM): the centre slice of every level."""
import pytest
import torch

import mp3d_mmdet  # noqa: F401
from mmdet.registry import MODELS


def test_returns_the_centre_slice_of_every_level():
    ctm = MODELS.build(dict(type='CenterSliceTransform', num_slices=5))
    xs = [torch.arange(2 * 3 * 5 * 4 * 4, dtype=torch.float32).view(2, 3, 5, 4, 4),
          torch.randn(2, 6, 5, 2, 2).contiguous(memory_format=torch.channels_last_3d)]
    outs = ctm(xs)
    assert [tuple(o.shape) for o in outs] == [(2, 3, 4, 4), (2, 6, 2, 2)]
    assert torch.equal(outs[0], xs[0][:, :, 2])
    assert outs[0][0, 0, 0, 0].item() == 2 * 16  # flat index of (0, 0, 2, 0, 0)
    assert torch.equal(outs[1], xs[1][:, :, 2])
    assert sum(p.numel() for p in ctm.parameters()) == 0


def test_per_level_slice_counts_and_channels():
    ctm = MODELS.build(dict(type='CenterSliceTransform', in_channels=[2, 4],
                            num_slices=[5, 3]))
    a, b = torch.randn(1, 2, 5, 3, 3), torch.randn(1, 4, 3, 2, 2)
    out_a, out_b = ctm([a, b])
    assert torch.equal(out_a, a[:, :, 2]) and torch.equal(out_b, b[:, :, 1])
    with pytest.raises(ValueError, match='level 1 has 4 channels, expected 5'):
        MODELS.build(dict(type='CenterSliceTransform', in_channels=[2, 5]))([a, b])


def test_errors():
    ctm = MODELS.build(dict(type='CenterSliceTransform', num_slices=9))
    with pytest.raises(ValueError, match='level 0 has 7 slices but num_slices=9'):
        ctm([torch.randn(1, 2, 7, 4, 4)])
    with pytest.raises(ValueError, match='even slice count 4'):
        MODELS.build(dict(type='CenterSliceTransform'))([torch.randn(1, 2, 4, 4, 4)])
    with pytest.raises(ValueError, match=r'must be \(B, C, D, H, W\)'):
        ctm([torch.randn(1, 2, 4, 4)])
    with pytest.raises(ValueError, match='odd positive'):
        MODELS.build(dict(type='CenterSliceTransform', num_slices=4))

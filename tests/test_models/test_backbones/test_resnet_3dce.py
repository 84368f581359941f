"""ResNet3DCE (FPN+3DCE baseline): grouping of slices, fusion, shapes, errors."""
import pytest
import torch

import mp3d_mmdet  # noqa: F401
from mp3d_mmdet.models.backbones import ResNet3DCE

TINY_R50 = dict(type='ResNet', depth=50, base_channels=8, out_indices=(0, 1, 2, 3),
                frozen_stages=-1, norm_cfg=dict(type='GN', num_groups=4),
                norm_eval=False, style='pytorch')


def tiny(num_slices, **kwargs):
    torch.manual_seed(0)
    model = ResNet3DCE(num_slices=num_slices, resnet=TINY_R50, **kwargs)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('num_slices', [3, 9, 27])
def test_output_shapes_are_2d(num_slices):
    model = tiny(num_slices)
    with torch.no_grad():
        outs = model(torch.randn(2, num_slices, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2),
                                              (2, 256, 1, 1)]
    assert model.num_groups == num_slices // 3
    assert [tuple(c.weight.shape) for c in model.fusion_convs] == [
        (c, num_slices // 3 * c, 1, 1) for c in (32, 64, 128, 256)]


def test_groups_of_three_adjacent_slices_share_one_resnet():
    model = tiny(9)
    seen = {}
    model.resnet.register_forward_hook(lambda m, a, o: seen.update(x=a[0], feats=o))
    x = torch.randn(2, 9, 32, 32)
    with torch.no_grad():
        outs = model(x)
    assert seen['x'].shape == (6, 3, 32, 32)
    torch.testing.assert_close(seen['x'][4], x[1, 3:6])  # sample 1, group 1
    # 'center' fusion: identity on the centre group -> the key triplet's 2D features
    for f, o in zip(seen['feats'], outs):
        torch.testing.assert_close(o, f.view(2, 3, *f.shape[1:])[:, 1])
    # fusion = 1x1 conv over the channel-concatenated groups (hand-set weights)
    conv = model.fusion_convs[3]
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :256, 0, 0] = 2 * torch.eye(256)     # group 0
        conv.weight[:, 512:, 0, 0] = -1 * torch.eye(256)    # group 2
        conv.bias.fill_(0.5)
        out = model(x)[3]
    f = seen['feats'][3].view(2, 3, 256, 1, 1)
    torch.testing.assert_close(out, 2 * f[:, 0] - f[:, 2] + 0.5)


def test_kaiming_fusion_init_and_parameter_count():
    model = tiny(27, fusion_init='kaiming')
    assert model.fusion_convs[0].weight.std() > 0
    n_resnet = sum(p.numel() for p in model.resnet.parameters())
    n_fusion = sum(9 * c * c + c for c in (32, 64, 128, 256))
    assert sum(p.numel() for p in model.parameters()) == n_resnet + n_fusion


@pytest.mark.parametrize('num_slices', [6, 4, 1, 0])
def test_bad_slice_count(num_slices):
    with pytest.raises(ValueError, match=r'ResNet3DCE: num_slices must be (an odd int >= 1|a '
                       r'multiple of slices_per_group=3)'):
        ResNet3DCE(num_slices=num_slices, resnet=TINY_R50)


def test_bad_arguments_and_input():
    with pytest.raises(ValueError, match='fusion_init'):
        ResNet3DCE(num_slices=9, resnet=TINY_R50, fusion_init='zeros')
    with pytest.raises(ValueError, match='slices_per_group'):
        ResNet3DCE(num_slices=9, slices_per_group=0, resnet=TINY_R50)
    model = tiny(9)
    with pytest.raises(ValueError, match=r'num_slices=9; expected input \(B, 9, H, W\)'):
        model(torch.randn(1, 3, 32, 32))

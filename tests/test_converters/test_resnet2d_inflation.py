"""2D ResNet -> MP3D / MR3D inflation and the Inflated2DPretrained initializer."""
from unittest import mock

import pytest
import torch

import mp3d_mmdet  # noqa: F401
from mmdet.models.backbones import ResNet
from mp3d_mmdet.models.backbones import MP3DResNet, MR3DResNet
from mp3d_mmdet.converters import canonical_resnet2d_keys, inflate_2d_state_dict

BN = dict(type='BN', requires_grad=True)
BN3D = dict(type='BN3d', requires_grad=True)


def resnet2d(style: str, base: int = 8, norm=BN) -> ResNet:
    """A narrow ResNet-50 layout (all 16 blocks) with random BN statistics."""
    torch.manual_seed(0)
    net = ResNet(depth=50, base_channels=base, style=style, norm_cfg=norm, norm_eval=False,
                 frozen_stages=-1, zero_init_residual=False)
    net.init_weights()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    return net


def assert_slicewise_equal(outs3d, outs2d, num_slices):
    for o3, o2 in zip(outs3d, outs2d):
        assert o3.shape[2] == num_slices
        for d in range(num_slices):
            torch.testing.assert_close(o3[:, :, d], o2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('cls,style', [(MP3DResNet, 'caffe'), (MR3DResNet, 'pytorch')])
def test_inflated_network_equals_2d_network_on_repeated_slices(cls, style):
    net2d = resnet2d(style)
    net3d = cls(base_channels=8, num_slices=5, norm_cfg=BN3D)
    net2d.double()
    net3d.double()  # float64: equal up to rounding, whatever the summation order
    net3d.load_state_dict(inflate_2d_state_dict(net2d.state_dict(), net3d))
    net3d.eval()
    img = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        outs2d = net2d(img.expand(2, 3, 64, 64))
        outs3d = net3d(img.expand(2, 5, 64, 64))
    assert_slicewise_equal(outs3d, outs2d, 5)


def test_temporal_kernels_and_norms_after_inflation():
    net3d = MP3DResNet(base_channels=8, num_slices=3, norm_cfg=BN3D)
    sd = inflate_2d_state_dict(resnet2d('caffe').state_dict(), net3d)
    w_t = sd['layer1.0.conv_t.weight']  # block 0: P3D-A
    assert torch.equal(w_t[:, :, 1, 0, 0], torch.eye(8))
    assert torch.all(w_t[:, :, [0, 2]] == 0)
    assert torch.all(sd['layer1.0.norm_t.weight'] == 1)
    assert torch.all(sd['layer1.1.norm_t.weight'] == 0)  # block 1: P3D-B, branch off
    assert torch.allclose(sd['layer1.1.norm_t.bias'], torch.tensor(1e-3))
    w2d = resnet2d('caffe').state_dict()
    assert torch.equal(sd['layer1.2.conv3.weight'][:, :, 0],
                       0.5 * w2d['layer1.2.conv3.weight'])  # block 2: P3D-C
    assert torch.equal(sd['layer1.0.conv_s.weight'][:, :, 0], w2d['layer1.0.conv2.weight'])
    assert torch.equal(sd['conv1.weight'][:, 0, 0], w2d['conv1.weight'].sum(1))


def test_b_branch_gets_gradients_with_group_norm():
    net3d = MP3DResNet(base_channels=32, num_slices=3, stage_blocks=(2, 1),
                       out_indices=None)
    w2d = resnet2d('pytorch', base=32).state_dict()
    with mock.patch('mp3d_mmdet.converters.resnet2d_inflation.print_log') as log:
        net3d.load_state_dict(inflate_2d_state_dict(w2d, net3d))
    unused = [c.args[0] for c in log.call_args_list if 'unused' in c.args[0]]
    assert unused and 'layer3.0.conv1.weight' in unused[0]  # stages 3-4 not in the model
    net3d.train()
    outs = net3d(torch.randn(1, 3, 32, 32))
    sum(o.square().mean() for o in outs).backward()
    b_block = net3d.layer1[1]
    assert b_block.pair_type == 'B'
    assert b_block.norm_t.weight.grad.abs().sum() > 0
    assert b_block.norm_t.bias.grad.abs().sum() > 0


def test_key_layouts_prefixes_and_fc_are_handled():
    w2d = resnet2d('caffe').state_dict()
    tv = {'backbone.' + k: v for k, v in w2d.items()}
    tv['backbone.fc.weight'] = torch.zeros(10, 256)
    canon = canonical_resnet2d_keys(tv)
    assert 'stem.conv.weight' in canon and 'layer4.2.norm3.running_var' in canon
    assert 'layer2.0.downsample.conv.weight' in canon
    assert not any(k.startswith('fc') for k in canon)
    gn_net = ResNet(depth=50, base_channels=32, norm_cfg=dict(type='GN', num_groups=4))
    gn_canon = canonical_resnet2d_keys(gn_net.state_dict())
    assert 'stem.norm.weight' in gn_canon and 'layer1.0.norm2.bias' in gn_canon
    with pytest.raises(ValueError, match='unrecognised keys'):
        canonical_resnet2d_keys({'stem.0.weight': torch.zeros(1), 'conv1.weight':
                                 torch.zeros(1)})
    with pytest.raises(ValueError, match="prefix 'model.'"):
        canonical_resnet2d_keys(w2d, prefix='model.')


def test_shape_mismatch_raises_or_logs_each_key():
    w2d = resnet2d('caffe', base=16).state_dict()
    net3d = MP3DResNet(base_channels=8, num_slices=3, norm_cfg=BN3D)
    with pytest.raises(ValueError, match=r'layer1\.0\.conv1\.weight <- layer1\.0\.conv1'
                       r'\.weight: inflated shape \(16, 16, 1, 1, 1\) != model shape '
                       r'\(8, 8, 1, 1, 1\)'):
        inflate_2d_state_dict(w2d, net3d)
    before = net3d.state_dict()['layer1.0.conv1.weight'].clone()
    with mock.patch('mp3d_mmdet.converters.resnet2d_inflation.print_log') as log:
        sd = inflate_2d_state_dict(w2d, net3d, strict_shapes=False)
    skipped = [c.args[0] for c in log.call_args_list if 'skipped' in c.args[0]]
    assert len(skipped) > 50 and all('!= model shape' in s for s in skipped)
    assert torch.equal(sd['layer1.0.conv1.weight'], before)


def test_initializer_from_init_cfg(tmp_path):
    w2d = resnet2d('caffe').state_dict()
    path = str(tmp_path / 'r50_2d.pth')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in w2d.items()}}, path)
    net3d = MP3DResNet(base_channels=8, num_slices=3, norm_cfg=BN3D,
                       init_cfg=dict(type='Inflated2DPretrained', checkpoint=path))
    net3d.init_weights()
    assert torch.equal(net3d.layer3[4].conv_s.weight[:, :, 0], w2d['layer3.4.conv2.weight'])
    assert not torch.all(net3d.layer1[0].norm3.weight == 0)  # no zero-init over weights


def test_mean_depth_init_for_mr3d():
    w2d = resnet2d('pytorch').state_dict()
    net3d = MR3DResNet(base_channels=8, num_slices=3, norm_cfg=BN3D)
    sd = inflate_2d_state_dict(w2d, net3d, depth_init='mean')
    w = sd['layer2.1.conv2.weight']
    for t in range(3):
        torch.testing.assert_close(w[:, :, t], w2d['layer2.1.conv2.weight'] / 3)
    torch.testing.assert_close(sd['conv1.weight'].sum(2)[:, 0], w2d['conv1.weight'].sum(1))
    with pytest.raises(ValueError, match='depth_init'):
        inflate_2d_state_dict(w2d, net3d, depth_init='edge')
    with pytest.raises(TypeError, match='MP3DResNet'):
        inflate_2d_state_dict(w2d, torch.nn.Conv2d(1, 1, 1))

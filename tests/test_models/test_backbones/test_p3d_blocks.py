"""P3DBottleneck: the three pair types wired as the paper draws them, and the residual block
against a functional reference."""
import pytest
import torch
import torch.nn.functional as F

from mp3d_mmdet.models.backbones import P3DBottleneck

GN4 = dict(type='GN', num_groups=4, requires_grad=True)


def _capture(block: P3DBottleneck, x: torch.Tensor):
    """Inputs of conv_t and conv3 and post-ReLU outputs of norm_s / norm_t."""
    seen = {}

    def keep_input(name):
        return lambda m, args, out: seen.__setitem__(name, args[0].detach().clone())

    def keep_relu_of_output(name):
        return lambda m, args, out: seen.__setitem__(name, out.detach().clone().relu())

    hooks = [
        block.conv_s.register_forward_hook(keep_input('s_in')),
        block.conv_t.register_forward_hook(keep_input('t_in')),
        block.conv3.register_forward_hook(keep_input('pair_out')),
        block.norm_s.register_forward_hook(keep_relu_of_output('S')),
        block.norm_t.register_forward_hook(keep_relu_of_output('T')),
    ]
    with torch.no_grad():
        block(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize('pair', ['A', 'B', 'C'])
def test_p3d_pair_wiring(pair):
    torch.manual_seed(1)
    block = P3DBottleneck(16, 8, pair_type=pair, norm_cfg=GN4).eval()
    for m in block.modules():
        if isinstance(m, torch.nn.GroupNorm):  # random affine: distinct S and T paths
            torch.nn.init.normal_(m.weight, 1.0, 0.5)
            torch.nn.init.normal_(m.bias, 0.0, 0.5)
    seen = _capture(block, torch.randn(2, 16, 5, 6, 6))
    if pair == 'A':  # T(S(x))
        torch.testing.assert_close(seen['t_in'], seen['S'])
        torch.testing.assert_close(seen['pair_out'], seen['T'])
    elif pair == 'B':  # S(x) + T(x)
        torch.testing.assert_close(seen['t_in'], seen['s_in'])
        torch.testing.assert_close(seen['pair_out'], seen['S'] + seen['T'])
    else:  # s = S(x); s + T(s)
        torch.testing.assert_close(seen['t_in'], seen['S'])
        torch.testing.assert_close(seen['pair_out'], seen['S'] + seen['T'])
    assert not torch.equal(seen['S'], seen['T'])


def test_block_residual_against_functional_reference():
    torch.manual_seed(2)
    block = P3DBottleneck(8, 4, pair_type='A', spatial_stride=2,
                          norm_cfg=dict(type='GN', num_groups=2)).eval()
    x = torch.randn(1, 8, 3, 8, 8)
    gn = lambda t, n: F.group_norm(t, 2, n.weight, n.bias, n.eps)  # noqa: E731
    y = F.relu(gn(F.conv3d(x, block.conv1.weight, stride=(1, 2, 2)), block.norm1))
    y = F.relu(gn(F.conv3d(y, block.conv_s.weight, padding=(0, 1, 1)), block.norm_s))
    y = F.relu(gn(F.conv3d(y, block.conv_t.weight, padding=(1, 0, 0)), block.norm_t))
    y = gn(F.conv3d(y, block.conv3.weight), block.norm3)
    idt = gn(F.conv3d(x, block.downsample[0].weight, stride=(1, 2, 2)),
             block.downsample[1])
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.relu(y + idt))

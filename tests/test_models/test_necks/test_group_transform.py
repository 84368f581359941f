"""GroupTransform (GTM): exact weighted slice sums, init, slice-count adaptation."""
from unittest import mock

import pytest
import torch

import mp3d_mmdet  # noqa: F401
from mmdet.registry import MODELS
from mp3d_mmdet.models.necks import GroupTransform, resample_slice_weights


def test_hand_set_weights_give_the_per_channel_weighted_sum():
    gtm = GroupTransform(in_channels=[2], num_slices=3)
    with torch.no_grad():
        gtm.convs[0].weight.copy_(torch.tensor([[1., 2., 3.], [0.5, 0., -1.]])[..., None, None])
    # x[b, c, d, h, w]: channel 0 slices 1, 10, 100; channel 1 slices 2, 4, 8 (times h+1)
    base = torch.tensor([[1., 10., 100.], [2., 4., 8.]])
    x = base[None, :, :, None, None] * torch.tensor([1., 2.])[None, None, None, :, None]
    x = x.expand(1, 2, 3, 2, 3).contiguous()
    (out, ) = gtm([x])
    assert out.shape == (1, 2, 2, 3)
    expected = torch.tensor([1 + 20 + 300., 1 + 0 - 8.])  # = 321, -7
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    torch.testing.assert_close(out[0, :, 1, 2], 2 * expected)


def test_channels_last_input_and_multiple_levels():
    gtm = GroupTransform(in_channels=[4, 8], num_slices=[5, 3])
    x0 = torch.randn(2, 4, 5, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    x1 = torch.randn(2, 8, 3, 3, 3)
    with torch.no_grad():
        gtm.convs[0].weight.normal_()
        out0, out1 = gtm([x0, x1])
    ref0 = (x0 * gtm.convs[0].weight[:, :, 0, 0][None, :, :, None, None]).sum(2)
    torch.testing.assert_close(out0, ref0)
    torch.testing.assert_close(out1, x1.mean(2))  # default 'mean' init


def test_parameter_count_of_the_paper_configuration():
    gtm = MODELS.build(dict(type='GroupTransform', in_channels=[256, 512, 1024, 2048],
                            num_slices=9))
    assert sum(p.numel() for p in gtm.parameters()) == 34_560
    assert all(c.bias is None and c.groups == c.out_channels for c in gtm.convs)


@pytest.mark.parametrize('mode', ['mean', 'center'])
def test_init_modes(mode):
    gtm = GroupTransform(in_channels=[3], num_slices=5, init_mode=mode)
    gtm.convs[0].weight.data.normal_()
    gtm.init_weights()
    x = torch.randn(1, 3, 5, 4, 4)
    (out, ) = gtm([x])
    torch.testing.assert_close(out, x.mean(2) if mode == 'mean' else x[:, :, 2])


def test_mismatched_input_raises():
    gtm = GroupTransform(in_channels=[4], num_slices=9)
    with pytest.raises(ValueError, match=r'level 0 expects \(B, 4, 9, H, W\).*num_slices'):
        gtm([torch.randn(1, 4, 7, 8, 8)])
    with pytest.raises(ValueError, match='got 2 levels, expected 1'):
        gtm([torch.randn(1, 4, 9, 8, 8)] * 2)
    with pytest.raises(ValueError, match=r'level 0 expects'):
        gtm([torch.randn(1, 4, 8, 8)])


@pytest.mark.parametrize('kwargs,match', [
    (dict(in_channels=[4], num_slices=[9, 9]), 'one per level'),
    (dict(in_channels=[4], num_slices=0), 'positive int'),
    (dict(in_channels=[4], num_slices=9, init_mode='random'), 'init_mode'),
    (dict(in_channels=[], num_slices=9), 'in_channels'),
    (dict(in_channels=[4]), 'GroupTransform: num_slices is not set'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GroupTransform(**kwargs)


def test_resample_slice_weights_linear_ramp_and_sum():
    w = torch.tensor([[0., 1., 2., 3., 4., 5., 6., 7., 8.]])[..., None, None]  # 9 slices
    new = resample_slice_weights(w, 5)
    # align-corners samples at 0, 2, 4, 6, 8, scaled by 9 / 5 (keeps the sum's scale)
    torch.testing.assert_close(new[0, :, 0, 0], torch.tensor([0., 2., 4., 6., 8.]) * 9 / 5)
    mean9 = torch.full((2, 9, 1, 1), 1 / 9)
    torch.testing.assert_close(resample_slice_weights(mean9, 3), torch.full((2, 3, 1, 1), 1 / 3))
    torch.testing.assert_close(resample_slice_weights(w, 1)[0, :, 0, 0], torch.tensor([36.]))
    torch.testing.assert_close(resample_slice_weights(w[:, 1:2], 3)[0, :, 0, 0],
                               torch.full((3, ), 1 / 3))
    with pytest.raises(ValueError, match=r'\(C, D, 1, 1\)'):
        resample_slice_weights(torch.zeros(2, 9), 5)


def test_loading_another_slice_count_resamples_and_logs():
    src = GroupTransform(in_channels=[4, 8], num_slices=9)
    with torch.no_grad():
        for c in src.convs:
            c.weight.copy_(torch.linspace(0, 8, 9).view(1, 9, 1, 1).expand_as(c.weight))
    dst = GroupTransform(in_channels=[4, 8], num_slices=5)
    with mock.patch('mp3d_mmdet.models.necks.group_transform.print_log') as log:
        dst.load_state_dict(src.state_dict())
    assert log.call_count == 2
    assert 'trained with 9 slices' in log.call_args_list[0].args[0]
    expected = torch.tensor([0., 2., 4., 6., 8.]) * 9 / 5
    for c in dst.convs:
        torch.testing.assert_close(c.weight[0, :, 0, 0], expected)
    # one level alone (a partial state dict) is resampled too
    part = GroupTransform(in_channels=[4, 8], num_slices=5)
    with mock.patch('mp3d_mmdet.models.necks.group_transform.print_log') as log:
        part.load_state_dict({'convs.1.weight': src.state_dict()['convs.1.weight']},
                             strict=False)
    assert log.call_count == 1 and 'convs.1.weight' in log.call_args.args[0]
    torch.testing.assert_close(part.convs[1].weight[0, :, 0, 0], expected)
    with pytest.raises(RuntimeError, match=r'size mismatch for convs.0.weight: copying a param '
                       r'with shape torch.Size\(\[4, 9, 1, 1\]\)'):  # other shapes: reported
        GroupTransform(in_channels=[2, 8], num_slices=9).load_state_dict(src.state_dict())


def test_adapt_gtm_weights_is_the_one_rule():
    from mp3d_mmdet.models.necks import adapt_gtm_weights, gtm_weight_levels
    sd = {'neck.0.convs.0.weight': torch.full((4, 9, 1, 1), 1 / 9),
          'neck.0.convs.1.weight': torch.full((8, 5, 1, 1), 1 / 5),
          'neck.1.lateral_convs.0.conv.weight': torch.zeros(2, 4, 1, 1)}
    assert gtm_weight_levels(sd) == {0: 'neck.0.convs.0.weight', 1: 'neck.0.convs.1.weight'}
    out, adapted = adapt_gtm_weights(sd, 5)
    assert adapted == [('neck.0.convs.0.weight', (4, 9, 1, 1), (4, 5, 1, 1))]
    torch.testing.assert_close(out['neck.0.convs.0.weight'], torch.full((4, 5, 1, 1), 0.2))
    assert out['neck.0.convs.1.weight'] is sd['neck.0.convs.1.weight']  # already 5 slices
    assert out['neck.1.lateral_convs.0.conv.weight'] is sd['neck.1.lateral_convs.0.conv.weight']
    out, adapted = adapt_gtm_weights(sd, [3, 1])  # one depth per level
    assert [new for _, _, new in adapted] == [(4, 3, 1, 1), (8, 1, 1, 1)]
    # a level the state dict lacks, or of other channels, is left to the loader to report
    out, adapted = adapt_gtm_weights(sd, [3, 3, 3])
    assert [key for key, _, _ in adapted] == ['neck.0.convs.0.weight', 'neck.0.convs.1.weight']
    out, adapted = adapt_gtm_weights({'neck.0.convs.1.weight': sd['neck.0.convs.1.weight']}, 3)
    assert adapted == [('neck.0.convs.1.weight', (8, 5, 1, 1), (8, 3, 1, 1))]
    out, adapted = adapt_gtm_weights(sd, 3, channels=[4, 16])
    assert [key for key, _, _ in adapted] == ['neck.0.convs.0.weight']
    with pytest.raises(ValueError, match=r'adapt_gtm_weights: num_slices must be a positive int '
                       r'or one per level \(2\)'):
        adapt_gtm_weights(sd, [3, 0])

"""COCO 3-slice pre-training -> N-slice detector initialisation (conversion core).

The GTM rule against hand-computed numbers, the full-size detectors of the real configs
(3-slice COCO pre-training -> 5, 9 and 11 slices: only the documented keys are missing), and
clear errors for checkpoints of other architectures.
"""
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mp3d_mmdet.models.necks import GroupTransform
from mp3d_mmdet.utils.config import load_config
from mp3d_mmdet.models.necks.group_transform import resample_slice_weights
from mp3d_mmdet.converters.pretraining import (DROPPED_PREFIXES, ConversionReport,
                                               check_mp3d_fpn_state_dict,
                                               convert_pretrained_state_dict)

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs')
PRETRAIN = 'mp3d_fpn_coco_pretrain_3slice_6x.py'
TARGETS = {5: 'mp3d_fpn_5slices_deeplesion_2x.py', 9: 'mp3d_fpn_deeplesion_2x_coco-pretrain.py',
           11: 'mp3d_fpn_11slices_deeplesion_2x.py'}
DROPPED = ['roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias',
           'roi_head.bbox_head.fc_reg.weight', 'roi_head.bbox_head.fc_reg.bias']


def minimal_state_dict(gtm_profile=(1.0, 0.0, 0.5)):
    """The keys the checks look at, tiny shapes; GTM level 0 = one channel with ``gtm_profile``."""
    torch.manual_seed(0)
    return OrderedDict([
        ('backbone.conv1.weight', torch.randn(4, 1, 1, 7, 7)),
        ('backbone.layer1.0.conv_s.weight', torch.randn(2, 4, 1, 3, 3)),
        ('neck.0.convs.0.weight', torch.tensor(gtm_profile).view(1, 3, 1, 1)),
        ('neck.0.convs.1.weight', torch.full((2, 3, 1, 1), 1.0 / 3)),
        ('neck.1.lateral_convs.0.conv.weight', torch.randn(8, 4, 1, 1)),
        ('rpn_head.rpn_cls.weight', torch.randn(3, 8, 1, 1)),
        ('roi_head.bbox_head.shared_fcs.0.weight', torch.randn(16, 8)),
        ('roi_head.bbox_head.fc_cls.weight', torch.randn(81, 16)),
        ('roi_head.bbox_head.fc_cls.bias', torch.randn(81)),
        ('roi_head.bbox_head.fc_reg.weight', torch.randn(320, 16)),
        ('roi_head.bbox_head.fc_reg.bias', torch.randn(320)),
    ])


@pytest.mark.parametrize('num_slices,expected', [
    # positions n * 2 / (N - 1) on the profile (1, 0, 0.5), times 3 / N
    (3, [1.0, 0.0, 0.5]),
    (5, [0.6, 0.3, 0.0, 0.15, 0.3]),
    (9, [1 / 3, 0.25, 1 / 6, 1 / 12, 0.0, 0.125 / 3, 0.25 / 3, 0.375 / 3, 0.5 / 3]),
])
def test_gtm_rule_hand_computed(num_slices, expected):
    sd = minimal_state_dict()
    out, report = convert_pretrained_state_dict(sd, num_slices)
    assert out['neck.0.convs.0.weight'].flatten().tolist() == pytest.approx(expected, abs=1e-7)
    # the untrained "mean" GTM (1/3 per slice) becomes the mean GTM of N slices (1/N)
    mean_gtm = GroupTransform([2], num_slices=num_slices, init_mode='mean').convs[0].weight
    torch.testing.assert_close(out['neck.0.convs.1.weight'], mean_gtm.detach())
    assert report.source_num_slices == [3, 3] and report.num_slices == num_slices
    assert [k for k, _, _ in report.adapted] == (
        [] if num_slices == 3 else ['neck.0.convs.0.weight', 'neck.0.convs.1.weight'])


@pytest.mark.parametrize('num_slices', [5, 9, 11])
def test_gtm_rule_keeps_the_sum_of_a_linear_profile(num_slices):
    # the response to a stack of identical slices (sum over slices) is kept exactly for a
    # linear profile: 0.3 + 0.6 + 0.9 = 1.8, e.g. 5 slices: (0.3, 0.45, 0.6, 0.75, 0.9) * 3/5
    out, _ = convert_pretrained_state_dict(minimal_state_dict((0.3, 0.6, 0.9)), num_slices)
    w = out['neck.0.convs.0.weight'].flatten()
    assert float(w.sum()) == pytest.approx(1.8, abs=1e-6)
    if num_slices == 5:
        assert w.tolist() == pytest.approx([0.18, 0.27, 0.36, 0.45, 0.54], abs=1e-7)


def test_carried_dropped_and_report_table():
    sd = minimal_state_dict()
    out, report = convert_pretrained_state_dict(sd, 5)
    assert list(out) == [k for k in sd if not k.startswith(DROPPED_PREFIXES)]
    for key in ('backbone.conv1.weight', 'neck.1.lateral_convs.0.conv.weight',
                'rpn_head.rpn_cls.weight', 'roi_head.bbox_head.shared_fcs.0.weight'):
        assert out[key] is sd[key]  # carried unchanged (not even copied)
    assert isinstance(report, ConversionReport)
    assert (report.backbone, report.num_classes) == ('MP3D', 80)
    assert [k for k, _ in report.dropped] == DROPPED
    assert report.adapted[1] == ('neck.0.convs.1.weight', (2, 3, 1, 1), (2, 5, 1, 1))
    assert len(report.carried) == 5
    table = report.table().splitlines()
    assert table[0].split() == ['action', 'tensors', 'values', 'module', '/', 'key', 'shape']
    rows = [line.split() for line in table[2:-1]]
    assert rows[0] == ['carried', '1', '196', 'backbone.conv1']
    assert ['carried', '1', '128', 'roi_head.bbox_head.shared_fcs'] in rows
    assert ['adapted', '1', '6', '->', '10', 'neck.0.convs.1.weight', '(2,', '3,', '1,', '1)',
            '->', '(2,', '5,', '1,', '1)'] in rows
    assert ['dropped', '1', '1,296', 'roi_head.bbox_head.fc_cls.weight', '(81,', '16)'] in rows
    assert table[-1].startswith('total: 5 carried, 2 adapted (GTM: linear resampling')
    assert table[-1].endswith('4 dropped')


@pytest.fixture(scope='module')
def coco_pretrained_state_dict():
    """The full-size COCO pre-training detector of the real config, GTM weights random."""
    init_default_scope('mmdet')
    model = MODELS.build(load_config(osp.join(CONFIG_DIR, PRETRAIN)).model)
    torch.manual_seed(0)
    with torch.no_grad():
        for conv in model.neck[0].convs:
            conv.weight.uniform_(-1.0, 1.0)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize('num_slices', [5, 9, 11])
def test_full_size_conversion_loads_into_the_real_n_slice_configs(coco_pretrained_state_dict,
                                                                  num_slices):
    src = coco_pretrained_state_dict
    out, report = convert_pretrained_state_dict(src, num_slices)
    assert report.source_num_slices == [3, 3, 3, 3] and report.num_classes == 80
    assert [k for k, _, _ in report.adapted] == [f'neck.0.convs.{i}.weight' for i in range(4)]
    init_default_scope('mmdet')
    cfg = load_config(osp.join(CONFIG_DIR, TARGETS[num_slices]))
    assert cfg.model.backbone.num_slices == cfg.model.neck[0].num_slices == num_slices
    target = MODELS.build(cfg.model)
    # torch raises on any shape mismatch even with strict=False
    result = target.load_state_dict(out, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(DROPPED)
    loaded = target.state_dict()
    for key, value in src.items():
        if key.startswith(DROPPED_PREFIXES):
            continue
        if key.startswith('neck.0.convs.'):
            assert loaded[key].shape == (value.shape[0], num_slices, 1, 1)
            assert torch.equal(loaded[key], resample_slice_weights(value, num_slices))
        else:
            assert torch.equal(loaded[key], value), key
    assert loaded['roi_head.bbox_head.fc_cls.weight'].shape == (2, 1024)


@pytest.mark.parametrize('edit,match', [
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith('backbone.')},
     r'ckpt\.pth: no backbone\.\* weights, not a detector checkpoint'),
    (lambda sd: {**sd, 'backbone.conv1.weight': torch.zeros(64, 3, 7, 7)},
     r'backbone\.conv1\.weight is \(64, 3, 7, 7\), a 2D backbone stem \(e\.g\. a 2D ResNet\)'),
    (lambda sd: {k: v for k, v in sd.items() if k != 'backbone.conv1.weight'},
     r'no backbone\.conv1\.weight'),
    (lambda sd: {k: v for k, v in sd.items() if 'conv_s' not in k},
     r'neither P3D pair weights .* not an MP3D/MR3D ResNet'),
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith('neck.0.')},
     r'no GroupTransform weights neck\.0\.convs\.<i>\.weight'),
    (lambda sd: {**sd, 'neck.0.convs.1.weight': torch.zeros(2, 3, 3, 3)},
     r'neck\.0\.convs\.1\.weight is \(2, 3, 3, 3\), expected a GTM weight \(C, D, 1, 1\)'),
])
def test_other_architectures_are_rejected(edit, match):
    with pytest.raises(ValueError, match=match):
        convert_pretrained_state_dict(edit(minimal_state_dict()), 9, source='ckpt.pth')


def test_mr3d_backbone_is_accepted():
    sd = minimal_state_dict()
    del sd['backbone.layer1.0.conv_s.weight']
    sd['backbone.layer1.0.conv2.weight'] = torch.zeros(2, 4, 3, 3, 3)
    assert check_mp3d_fpn_state_dict(sd) == ('MR3D', [3, 3])


@pytest.mark.parametrize('num_slices', [4, 0, '9'])
def test_bad_slice_count(num_slices):
    with pytest.raises(ValueError, match='num_slices must be an odd int >= 1'):
        convert_pretrained_state_dict(minimal_state_dict(), num_slices)

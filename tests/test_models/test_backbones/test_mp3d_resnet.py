"""MP3DResNet / MR3DResNet: shapes, slice pooling, stage layout, freezing, errors, size."""
import os.path as osp

import pytest
import torch

import mp3d_mmdet  # noqa: F401  (registers the models)
from mmdet.registry import MODELS
from mp3d_mmdet.models.backbones import MP3DResNet, MR3DResNet, P3DBottleneck, slice_depths
from mp3d_mmdet.utils.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
GN4 = dict(type='GN', num_groups=4, requires_grad=True)


def tiny(**kwargs) -> MP3DResNet:
    """4-stage, 1 block per stage, base width 8 (outputs 32/64/128/256 channels)."""
    cfg = dict(base_channels=8, stage_blocks=(1, 1, 1, 1), norm_cfg=GN4, num_slices=9)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MP3DResNet(**cfg)


@pytest.mark.parametrize('num_slices', [3, 5, 7, 9, 11])
@pytest.mark.parametrize('conv_type', ['p3d', '3d'])
def test_output_shapes_keep_slice_axis(num_slices, conv_type):
    model = tiny(num_slices=num_slices, conv_type=conv_type).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, num_slices, 32, 48))
    assert [tuple(o.shape) for o in outs] == [
        (2, 32, num_slices, 8, 12), (2, 64, num_slices, 4, 6),
        (2, 128, num_slices, 2, 3), (2, 256, num_slices, 1, 2)]
    assert model.output_depths() == [num_slices] * 4


@pytest.mark.parametrize('num_slices,depths', [(9, [5, 3, 2, 1]), (3, [2, 1, 1, 1]),
                                               (11, [6, 3, 2, 1])])
def test_isotropic_pooling_shrinks_slice_axis(num_slices, depths):
    model = tiny(num_slices=num_slices, slice_pooling='isotropic').eval()
    with torch.no_grad():
        outs = model(torch.randn(1, num_slices, 32, 32))
    assert [o.shape[2] for o in outs] == depths
    assert [tuple(o.shape[3:]) for o in outs] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert model.output_depths() == depths == slice_depths(num_slices, 'isotropic')


def test_out_indices_and_stage_widths():
    model = tiny(num_slices=5, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 5, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 5, 4, 4), (1, 256, 5, 1, 1)]
    assert model.feat_dims == (32, 64, 128, 256)


def test_pair_types_cycle_by_global_block_index():
    model = MP3DResNet(base_channels=32, stage_blocks=(3, 4, 6, 3), num_slices=3)
    pairs = [blk.pair_type for name in model.res_layers for blk in getattr(model, name)]
    assert ''.join(pairs) == 'ABCABCABCABCABCA'
    mr3d = MR3DResNet(base_channels=32, stage_blocks=(1, 2), num_slices=3, out_indices=None)
    assert [b.pair_type for n in mr3d.res_layers for b in getattr(mr3d, n)] == ['3d'] * 3


def test_layer_shapes_and_stride_placement():
    mp3d = tiny(num_slices=5)
    blk = mp3d.layer2[0]
    assert mp3d.conv1.weight.shape == (8, 1, 1, 7, 7)
    assert blk.conv1.stride == (1, 2, 2) and blk.conv_s.stride == (1, 1, 1)  # caffe
    assert blk.conv_s.weight.shape == (16, 16, 1, 3, 3)
    assert blk.conv_t.weight.shape == (16, 16, 3, 1, 1)
    assert blk.downsample[0].stride == (1, 2, 2)
    assert blk.conv1.bias is None and blk.conv_t.bias is None
    mr3d = MR3DResNet(base_channels=8, stage_blocks=(1, 1, 1, 1), norm_cfg=GN4,
                      num_slices=5)
    assert mr3d.conv_type == '3d' and mr3d.style == 'pytorch'
    assert mr3d.conv1.weight.shape == (8, 1, 7, 7, 7)
    blk = mr3d.layer2[0]
    assert blk.conv1.stride == (1, 1, 1) and blk.conv2.stride == (1, 2, 2)
    assert blk.conv2.weight.shape == (16, 16, 3, 3, 3)


def test_frozen_stages_have_no_grad_and_stay_in_eval():
    model = tiny(num_slices=3, frozen_stages=1, norm_cfg=dict(type='BN3d'))
    model.train()
    frozen = [model.conv1, model.norm1, model.layer1]
    for m in frozen:
        assert all(not p.requires_grad for p in m.parameters())
        assert all(not mod.training for mod in m.modules())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert model.layer2.training
    outs = model(torch.randn(2, 3, 32, 32))
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert model.layer2[0].conv_t.weight.grad is not None


def test_norm_eval_keeps_batchnorm_in_eval():
    model = tiny(num_slices=3, norm_cfg=dict(type='BN3d'), norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(not m.training for m in bns)
    assert model.layer1[0].training  # only the norms are in eval mode


def test_with_cp_matches_and_backpropagates():
    model = tiny(num_slices=3)
    model.init_weights()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    ref = model(x)
    cp_model = tiny(num_slices=3, with_cp=True)
    cp_model.load_state_dict(model.state_dict())
    outs = cp_model(x)
    for a, b in zip(ref, outs):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in outs).backward()
    assert x.grad is not None and cp_model.layer3[0].conv_s.weight.grad is not None


def test_zero_init_residual_and_pretrained_init(tmp_path):
    model = tiny(num_slices=3)
    model.init_weights()
    assert all(torch.all(b.norm3.weight == 0) for b in model.modules()
               if isinstance(b, P3DBottleneck))
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.normal_(m.weight)
    path = str(tmp_path / 'mp3d.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    loaded = tiny(num_slices=3, init_cfg=dict(type='Pretrained', checkpoint=path))
    loaded.init_weights()
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_registered_and_alias():
    a = MODELS.build(dict(type='MR3DResNet', base_channels=8, stage_blocks=(1, ),
                          norm_cfg=GN4, num_slices=3, out_indices=(0, )))
    b = MODELS.build(dict(type='MP3DResNet', conv_type='3d', base_channels=8,
                          stage_blocks=(1, ), norm_cfg=GN4, num_slices=3,
                          out_indices=(0, )))
    assert [(k, v.shape) for k, v in a.state_dict().items()] == \
        [(k, v.shape) for k, v in b.state_dict().items()]
    with pytest.raises(ValueError, match="MR3DResNet has conv_type='3d'"):
        MR3DResNet(conv_type='p3d')


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_slices=8), r'MP3DResNet: num_slices must be an odd int >= 1 \(the key slice'),
    (dict(num_slices=None), r'MP3DResNet: num_slices is not set: a config sets num_slices '
     'once, at its top level'),
    (dict(num_slices=0), 'num_slices must be an odd int >= 1'),
    (dict(num_slices=9.0), 'num_slices must be an odd int'),
    (dict(conv_type='2d'), 'conv_type must be one of'),
    (dict(slice_pooling='max'), 'slice_pooling must be one of'),
    (dict(depth=34), 'depth must be one of'),
    (dict(norm_cfg=dict(type='BN')), "use 'BN3d'"),
    (dict(pair_cycle=('A', 'D')), 'pair_cycle'),
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(stem_depth_kernel=2), 'stem_depth_kernel'),
    (dict(temporal_kernel=2), 'temporal_kernel'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_bad_inputs():
    model = tiny(num_slices=5).eval()
    with pytest.raises(ValueError, match=r'num_slices=5 but the input has 7 channels'):
        model(torch.randn(1, 7, 32, 32))
    with pytest.raises(ValueError, match=r'expects \(B, N, H, W\)'):
        model(torch.randn(1, 1, 5, 32, 32))
    with pytest.raises(ValueError, match='slice_pooling must be one of'):
        slice_depths(9, 'avg')


def test_full_size_backbone_parameter_counts():
    with torch.device('meta'):
        mp3d = MP3DResNet(num_slices=9)
        mr3d = MR3DResNet(num_slices=9)
    # ResNet-50 (1-channel stem) + one 3x1x1 conv and one GN per block
    assert sum(p.numel() for p in mp3d.parameters()) == 27_281_728
    assert sum(p.numel() for p in mr3d.parameters()) == 46_155_072


def test_detector_config_parameter_count():
    cfg = load_config(osp.join(REPO, 'configs/_base_/models/mp3d_fpn.py'))
    with torch.device('meta'):
        detector = MODELS.build(cfg.model)
    n = sum(p.numel() for p in detector.parameters())
    assert abs(n - 45.16e6) / 45.16e6 < 0.01
    assert n == 45_156_437
    assert sum(p.numel() for p in detector.neck[0].parameters()) == 34_560


def test_detector_config_trains_and_predicts_on_slices():
    """The paper's detector config end to end (loss + predict) on a 9 x 64 x 64 input."""
    from mmengine.structures import InstanceData
    from mmdet.structures import DetDataSample
    cfg = load_config(osp.join(REPO, 'configs/_base_/models/mp3d_fpn.py'))
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model)
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         pad_shape=(64, 64), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 30., 40.]]),
                                       labels=torch.tensor([0]))
    data = detector.data_preprocessor(
        dict(inputs=[torch.rand(9, 64, 64) * 255], data_samples=[sample]), training=True)
    assert data['inputs'].shape == (1, 9, 64, 64)
    detector.train()
    losses = detector(data['inputs'], data['data_samples'], mode='loss')
    total = sum(v if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items()
                if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert detector.neck[0].convs[0].weight.grad is not None
    detector.eval()
    with torch.no_grad():
        (pred, ) = detector(data['inputs'], data['data_samples'], mode='predict')
    assert pred.pred_instances.bboxes.shape[1] == 4
    assert len(pred.pred_instances) <= 100
    with pytest.raises(ValueError, match='num_slices=9 but the input has 7 channels'):
        detector(data['inputs'][:, :7], data['data_samples'], mode='tensor')

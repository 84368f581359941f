"""mp3d-convert-pretraining-checkpoint (and its script under tools/model_converters/): the
CLI on a (tiny) pre-training checkpoint of the real config."""
import os.path as osp

import mmdet
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from mp3d_mmdet.cli import convert_pretraining_checkpoint
from mp3d_mmdet.utils.config import load_config

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DROPPED = ['roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias',
           'roi_head.bbox_head.fc_reg.weight', 'roi_head.bbox_head.fc_reg.bias']


def load_tool():
    return convert_pretraining_checkpoint


def tiny_model(config: str):
    """Build a config's detector at tiny width (8 base channels, 1 block per stage, GN 4)."""
    init_default_scope('mmdet')
    cfg = load_config(osp.join(REPO, 'configs', config))
    channels = [32, 64, 128, 256]
    cfg.model.backbone.update(base_channels=8, stage_blocks=[1, 1, 1, 1],
                              norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
    cfg.model.neck[0].in_channels = channels
    cfg.model.neck[1].update(in_channels=channels, out_channels=32)
    cfg.model.rpn_head.update(in_channels=32, feat_channels=32)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 32
    cfg.model.roi_head.bbox_head.update(in_channels=32, fc_out_channels=32)
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def pretrain_checkpoint(tmp_path_factory):
    model = tiny_model('mp3d_fpn_coco_pretrain_3slice_6x.py')
    path = tmp_path_factory.mktemp('pretrain') / 'epoch_72.pth'
    classes = [f'class{i}' for i in range(80)]
    torch.save(dict(meta=dict(epoch=72, iter=1000, dataset_meta=dict(classes=tuple(classes))),
                    state_dict=model.state_dict()), path)
    return str(path)


def test_cli_converts_prints_the_table_and_writes_a_loadable_checkpoint(
        pretrain_checkpoint, tmp_path, capsys):
    dst = tmp_path / 'sub' / 'mp3d_fpn_coco_3slice_to_5slice.pth'
    assert load_tool().main([pretrain_checkpoint, str(dst), '--num-slices', '5']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f'{pretrain_checkpoint}: MP3D FPN, GTM slices [3, 3, 3, 3], 80 classes '
                      f'-> {dst}: 5 slices')
    rows = [line.split() for line in out[3:-1]]
    assert [r[0] for r in rows].count('adapted') == 4
    assert ['adapted', '1', '96', '->', '160', 'neck.0.convs.0.weight', '(32,', '3,', '1,', '1)',
            '->', '(32,', '5,', '1,', '1)'] in rows
    assert [r[3] for r in rows if r[0] == 'dropped'] == DROPPED
    assert {r[3] for r in rows if r[0] == 'carried'} == {
        'backbone.conv1', 'backbone.norm1', 'backbone.layer1', 'backbone.layer2',
        'backbone.layer3', 'backbone.layer4', 'neck.1', 'rpn_head.rpn_conv',
        'rpn_head.rpn_cls', 'rpn_head.rpn_reg', 'roi_head.bbox_head.shared_fcs'}
    assert out[-1].startswith('total: ') and ' carried, 4 adapted (GTM: ' in out[-1]

    # the mmengine format, readable with weights_only=True
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    conversion = ckpt['meta']['conversion']
    assert (conversion['source'], conversion['backbone'], conversion['num_slices'],
            conversion['source_num_slices'], conversion['source_num_classes']) == (
                pretrain_checkpoint, 'MP3D', 5, [3, 3, 3, 3], 80)
    assert conversion['dropped'] == DROPPED
    assert conversion['adapted'] == [f'neck.0.convs.{i}.weight' for i in range(4)]
    assert 'linear resampling' in conversion['gtm_rule']
    pretraining = ckpt['meta']['pretraining']
    assert (pretraining['epoch'], pretraining['iter'], len(pretraining['classes'])) == (
        72, 1000, 80)

    # loads through mmengine (the path `load_from` takes) into the 5-slice detector
    target = tiny_model('mp3d_fpn_5slices_deeplesion_2x.py')
    load_checkpoint(target, str(dst), map_location='cpu', strict=False)
    src = torch.load(pretrain_checkpoint, map_location='cpu', weights_only=True)['state_dict']
    loaded = target.state_dict()
    assert torch.equal(loaded['backbone.layer4.0.conv_t.weight'],
                       src['backbone.layer4.0.conv_t.weight'])
    assert torch.equal(loaded['rpn_head.rpn_reg.weight'], src['rpn_head.rpn_reg.weight'])
    assert torch.equal(loaded['neck.0.convs.3.weight'], ckpt['state_dict']['neck.0.convs.3.weight'])
    assert loaded['neck.0.convs.3.weight'].shape == (256, 5, 1, 1)


def test_cli_rejects_a_2d_detector_checkpoint(tmp_path, capsys):
    # mmdet's own (2D ResNet) Faster R-CNN
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_',
                                   'models', 'faster-rcnn_r50_fpn.py'))
    cfg.model.backbone.update(depth=18, init_cfg=None)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    src = tmp_path / 'faster_rcnn_r18.pth'
    torch.save(dict(meta={}, state_dict=MODELS.build(cfg.model).state_dict()), src)
    dst = tmp_path / 'out.pth'
    assert load_tool().main([str(src), str(dst)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f'mp3d-convert-pretraining-checkpoint: error: {src}: backbone.conv1.weight is '
                   '(64, 3, 7, 7), a 2D backbone stem (e.g. a 2D ResNet); an MP3D stem is a '
                   '5-D (C, 1, k, 7, 7) kernel applied per slice')
    assert not dst.exists()


@pytest.mark.parametrize('args,match', [
    (['missing.pth', 'out.pth'], 'pre-training checkpoint file not found: missing.pth'),
    (['{src}', '{src}'], 'is the input {src} (the same file after resolving links)'),
    (['{src}', 'out.pth', '--num-slices', '8'], 'num_slices must be an odd int >= 1'),
])
def test_cli_bad_arguments(pretrain_checkpoint, tmp_path, capsys, args, match):
    args = [a.format(src=pretrain_checkpoint) if a.startswith('{') else
            (str(tmp_path / a) if a.endswith('.pth') and a != 'missing.pth' else a)
            for a in args]
    assert load_tool().main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith('mp3d-convert-pretraining-checkpoint: error: ')
    assert match.format(src=pretrain_checkpoint) in err

"""Every config in configs/ parses and builds its model; the main config is the paper's recipe;
the slice count has one owner."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mp3d_mmdet  # noqa: F401
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mp3d_mmdet.utils.config import ConfigError, load_config, resolve_config

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs')
CONFIGS = sorted(p for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
BASES = sorted(glob.glob(osp.join(CONFIG_DIR, '_base_', '*', '*.py')))
MAIN = osp.join(CONFIG_DIR, 'mp3d_fpn_deeplesion_2x.py')

register_all_modules(init_default_scope=True)


def _slice_counts(cfg: Config):
    """The slice count at each place it appears: loaders (train, val, test), backbone, adapter."""
    counts = [cfg[f'{split}_dataloader'].dataset.pipeline[0].num_slices
              for split in ('train', 'val', 'test')] + [cfg.model.backbone.num_slices]
    if isinstance(cfg.model.neck, list):
        counts.append(cfg.model.neck[0].num_slices)
    return counts


def _meta_model(cfg: Config):
    """The config's full-size model on the meta device (shapes only: no memory, no compute)."""
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def test_all_paper_experiments_have_a_config():
    names = {osp.basename(p)[:-3] for p in CONFIGS}
    expected = {
        'mp3d_fpn_deeplesion_2x', 'mp3d_fpn_5slices_deeplesion_2x',
        'mp3d_fpn_7slices_deeplesion_2x', 'mp3d_fpn_11slices_deeplesion_2x',
        'mp3d_fpn_ctm_deeplesion_2x', 'mp3d_fpn_isotropic_deeplesion_2x',
        'mr3d_fpn_deeplesion_2x', 'fpn_3dce_3slices_deeplesion_2x',
        'fpn_3dce_9slices_deeplesion_2x', 'fpn_3dce_27slices_deeplesion_2x',
        'mp3d_fpn_deeplesion_1x', 'mp3d_fpn_deeplesion_6x',
        'mp3d_fpn_deeplesion_1x_coco-pretrain', 'mp3d_fpn_deeplesion_2x_coco-pretrain',
        'mp3d_fpn_deeplesion_2x_data20', 'mp3d_fpn_deeplesion_2x_data40',
        'mp3d_fpn_deeplesion_2x_data60', 'mp3d_fpn_deeplesion_2x_data80',
        'mp3d_fpn_synthetic_demo', 'mp3d_fpn_coco_pretrain_3slice_6x'}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_config_parses_and_builds(path):
    cfg = load_config(path)
    assert cfg.runner_type == 'DeviceAwareRunner'
    assert cfg.custom_imports.imports == ['mp3d_mmdet']
    if osp.basename(path) == 'mp3d_fpn_coco_pretrain_3slice_6x.py':
        # COCO pre-training: 3 slices = R, G, B (RGBToSlices), 80 classes; its recipe is
        # checked in test_coco_pretrain_config.py.
        assert [t.type for t in cfg.train_dataloader.dataset.pipeline[:2]] == [
            'LoadImageFromFile', 'RGBToSlices']
        assert cfg.model.backbone.num_slices == cfg.model.neck[0].num_slices == 3
        assert _meta_model(cfg).roi_head.bbox_head.num_classes == 80
        return
    counts = _slice_counts(cfg)
    if cfg.model.backbone.get('slice_pooling') == 'isotropic':
        # 9 slices in; the GTM of each level fuses what the slice pooling left of them.
        assert counts[:4] == [9, 9, 9, 9] and counts[4] == [5, 3, 2, 1]
    else:
        assert len(set(counts)) == 1, counts
    model = _meta_model(cfg)
    assert model.roi_head.bbox_head.num_classes == 1
    assert model.backbone.num_slices == counts[0]


@pytest.mark.parametrize('path', CONFIGS + BASES, ids=lambda p: osp.basename(p)[:-3])
def test_every_config_writes_its_places_out(path):
    """Resolving a config changes nothing: every place already holds its top-level value, so
    mmdet's own entry points, which do not resolve, build what the plugin builds
    (tests/test_configs/test_mmdet_entry_points.py)."""
    assert resolve_config(Config.fromfile(path)) == []


@pytest.mark.parametrize('name,slices', [('mp3d_fpn_5slices_deeplesion_2x', 5),
                                         ('mp3d_fpn_7slices_deeplesion_2x', 7),
                                         ('mp3d_fpn_11slices_deeplesion_2x', 11),
                                         ('fpn_3dce_3slices_deeplesion_2x', 3),
                                         ('fpn_3dce_27slices_deeplesion_2x', 27)])
def test_a_variant_sets_its_slice_count_and_writes_it_out(name, slices):
    path = osp.join(CONFIG_DIR, name + '.py')
    lines = [line for line in open(path).read().splitlines()
             if line.strip() and not line.startswith('#')]
    assert lines[1] == f'num_slices = {slices}'  # after `_base_ = ...`
    assert all(str(slices) not in line for line in lines[2:]), lines  # written as num_slices
    assert set(_slice_counts(Config.fromfile(path))) == {slices}  # without resolving
    assert set(_slice_counts(Config.fromfile(MAIN))) == {9}  # the base is left untouched


def test_a_child_config_setting_num_slices_13_builds_a_13_slice_model(tmp_path):
    child = tmp_path / 'mp3d_13.py'
    child.write_text(f'_base_ = {MAIN!r}\nnum_slices = 13\n')
    cfg = load_config(str(child))
    assert set(_slice_counts(cfg)) == {13}
    model = _meta_model(cfg)
    assert model.backbone.num_slices == 13 and model.neck[0].num_slices == [13] * 4
    assert tuple(model.neck[0].convs[0].weight.shape) == (256, 13, 1, 1)
    # the same from the command line
    assert set(_slice_counts(load_config(MAIN, {'num_slices': 13}))) == {13}
    # isotropic slice pooling: the GTM depths follow from 13 slices
    iso = load_config(osp.join(CONFIG_DIR, 'mp3d_fpn_isotropic_deeplesion_2x.py'),
                      {'num_slices': 13})
    assert iso.model.neck[0].num_slices == [7, 4, 2, 1]


@pytest.mark.parametrize('options,message', [
    ({'val_dataloader.dataset.pipeline.0.num_slices': 7},
     r'num_slices = 9 \(top level\) but val_dataloader.dataset.pipeline\[0\].num_slices = 7'),
    ({'model.backbone.num_slices': 13},
     r'num_slices = 9 \(top level\) but model.backbone.num_slices = 13'),
    ({'test_dataloader.dataset.pipeline.0.hu_window': (-100, 300)},
     r'hu_window = \(-1024, 1050\) \(top level\) but test_dataloader.dataset.pipeline\[0\]'),
])
def test_a_place_set_to_another_value_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        load_config(MAIN, options)


def test_an_adapter_that_disagrees_with_the_backbone_is_refused():
    with pytest.raises(ConfigError, match=r'model.neck\[0\].num_slices = 5 but the backbone '
                       r'\(MP3DResNet, num_slices=9\) outputs slice depths \[9, 9, 9, 9\]'):
        load_config(MAIN, {'model.neck.0.num_slices': 5})


def test_without_a_top_level_value_the_places_must_agree():
    plain = Config.fromfile(MAIN).to_dict()
    del plain['num_slices']  # as another project's config: no top-level num_slices
    cfg = Config(plain)
    assert resolve_config(cfg) == []  # the places agree
    cfg.val_dataloader.dataset.pipeline[0]['num_slices'] = 5
    with pytest.raises(ConfigError, match=r'model.backbone.num_slices = 9 but '
                       r'val_dataloader.dataset.pipeline\[0\].num_slices = 5: the places of '
                       'num_slices disagree'):
        resolve_config(cfg)
    del cfg.model.backbone['num_slices']
    with pytest.raises(ConfigError, match=r'model.backbone.num_slices is not set but '
                       r'train_pipeline\[0\].num_slices = 9'):
        resolve_config(cfg)


def test_main_config_is_the_papers_recipe():
    cfg = load_config(MAIN)
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.num_slices, backbone.conv_type,
            backbone.slice_pooling) == ('MP3DResNet', 50, 9, 'p3d', 'none')
    assert backbone.norm_cfg == dict(type='GN', num_groups=32, requires_grad=True)
    gtm, fpn = cfg.model.neck
    assert gtm.type == 'GroupTransform' and gtm.num_slices == 9
    assert (fpn.type, fpn.out_channels, fpn.num_outs) == ('FPN', 256, 5)
    anchors = cfg.model.rpn_head.anchor_generator
    sizes = [scale * stride for stride in anchors.strides for scale in anchors.scales]
    assert sizes == [16, 32, 64, 128, 256]
    assert anchors.strides == [4, 8, 16, 32, 64] and anchors.ratios == [0.5, 1.0, 2.0]
    head = cfg.model.roi_head.bbox_head
    assert (head.type, head.num_classes, head.fc_out_channels) == ('Shared2FCBBoxHead', 1, 1024)
    assert cfg.model.test_cfg.rcnn.nms.iou_threshold == 0.5
    assert cfg.model.test_cfg.rcnn.max_per_img == 100
    # Schedule: 24 epochs, lr 0.02 / 10 after epochs 16 and 22, linear warm-up.
    assert cfg.train_cfg.max_epochs == 24
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.by_epoch is False and warmup.end > 0
    assert (steps.type, steps.milestones, steps.gamma) == ('MultiStepLR', [16, 22], 0.1)
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper' and optim.clip_grad.max_norm > 0
    assert (optim.optimizer.type, optim.optimizer.lr, optim.optimizer.momentum,
            optim.optimizer.weight_decay) == ('SGD', 0.02, 0.9, 0.0001)
    assert cfg.auto_scale_lr.base_batch_size == 16
    # Data: DeepLesion splits with the paper's 2.5 mm, [-1024, 1050] HU and scales.
    assert cfg.train_dataloader.dataset.type == 'DeepLesionDataset'
    assert [cfg[f'{s}_dataloader'].dataset.split for s in ('train', 'val', 'test')] == [
        'train', 'val', 'test']
    load = cfg.train_dataloader.dataset.pipeline[0]
    assert (load.type, load.slice_interval, tuple(load.hu_window)) == (
        'LoadCTSlices', 2.5, (-1024, 1050))
    resize = cfg.train_dataloader.dataset.pipeline[2]
    assert [s[0] for s in resize.scales] == [448, 512, 576]
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (512, 512)
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'FROCMetric'
    assert len({cfg[f'{s}_dataloader'].dataset.data_root for s in ('train', 'val', 'test')}) == 1
    assert [h.type for h in cfg.custom_hooks] == ['EvaluationProgressHook']


@pytest.mark.parametrize('value', ['/data/DeepLesion', '/data/DeepLesion/'])
def test_data_roots_come_from_the_environment_with_or_without_a_slash(monkeypatch, value):
    monkeypatch.setenv('DEEPLESION_ROOT', value)
    monkeypatch.setenv('COCO_ROOT', value.replace('DeepLesion', 'coco'))
    for name in ('mp3d_fpn_deeplesion_2x.py', 'mp3d_fpn_synthetic_demo.py'):
        cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
        assert {cfg[f'{s}_dataloader'].dataset.data_root for s in ('train', 'val', 'test')} \
            == {'/data/DeepLesion/'}, name
    coco = Config.fromfile(osp.join(CONFIG_DIR, 'mp3d_fpn_coco_pretrain_3slice_6x.py'))
    assert coco.train_dataloader.dataset.data_root == '/data/coco/'
    assert coco.val_evaluator.ann_file == '/data/coco/annotations/instances_val2017.json'


def test_schedules_and_data_fractions():
    one_x = Config.fromfile(osp.join(CONFIG_DIR, 'mp3d_fpn_deeplesion_1x.py'))
    six_x = Config.fromfile(osp.join(CONFIG_DIR, 'mp3d_fpn_deeplesion_6x.py'))
    assert (one_x.train_cfg.max_epochs, one_x.param_scheduler[1].milestones) == (12, [8, 11])
    assert (six_x.train_cfg.max_epochs, six_x.param_scheduler[1].milestones) == (72, [48, 66])
    for percent in (20, 40, 60, 80):
        cfg = Config.fromfile(osp.join(CONFIG_DIR, f'mp3d_fpn_deeplesion_2x_data{percent}.py'))
        assert cfg.train_dataloader.dataset.data_fraction == pytest.approx(percent / 100)
    pretrained = Config.fromfile(osp.join(CONFIG_DIR, 'mp3d_fpn_deeplesion_2x_coco-pretrain.py'))
    assert pretrained.load_from.endswith('.pth')

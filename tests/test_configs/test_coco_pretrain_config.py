"""The COCO 3-slice pre-training config is the paper's recipe and matches the DeepLesion input."""
import os.path as osp

from mp3d_mmdet.utils.config import load_config

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs')
PRETRAIN = osp.join(CONFIG_DIR, 'mp3d_fpn_coco_pretrain_3slice_6x.py')
MAIN = osp.join(CONFIG_DIR, 'mp3d_fpn_deeplesion_2x.py')


def test_pretraining_recipe():
    cfg = load_config(PRETRAIN)
    assert cfg.runner_type == 'DeviceAwareRunner'
    assert cfg.custom_imports.imports == ['mp3d_mmdet']
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.num_slices, backbone.conv_type,
            backbone.slice_pooling) == ('MP3DResNet', 50, 3, 'p3d', 'none')
    assert backbone.norm_cfg == dict(type='GN', num_groups=32, requires_grad=True)
    gtm, fpn = cfg.model.neck
    assert (gtm.type, gtm.num_slices, fpn.type) == ('GroupTransform', 3, 'FPN')
    assert cfg.model.roi_head.bbox_head.num_classes == 80
    # 72 epochs, lr / 10 after epochs 64 and 70, mixed precision
    assert cfg.train_cfg.max_epochs == 72
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 500
    assert (steps.milestones, steps.gamma, steps.end) == ([64, 70], 0.1, 72)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert (cfg.optim_wrapper.optimizer.lr, cfg.auto_scale_lr.base_batch_size) == (0.02, 16)
    # COCO 2017 through mmdet's dataset and metric, RGBToSlices right after loading
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        assert (dataset.type, dataset.data_root) == ('CocoDataset', 'data/coco/')
        assert [t.type for t in dataset.pipeline[:2]] == ['LoadImageFromFile', 'RGBToSlices']
        assert dataset.pipeline[-1].type == 'PackDetInputs'
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'CocoMetric'
    assert cfg.val_evaluator.ann_file == 'data/coco/annotations/instances_val2017.json'


def test_input_normalisation_and_rpn_shapes_match_the_deeplesion_detector():
    pretrain, main = load_config(PRETRAIN), load_config(MAIN)
    # same [0, 255] input normalised by one mean/std for every slice, no channel flip
    assert pretrain.model.data_preprocessor == main.model.data_preprocessor
    assert main.model.data_preprocessor.bgr_to_rgb is False
    # same number of anchors per location, so the RPN weights transfer
    a, b = pretrain.model.rpn_head.anchor_generator, main.model.rpn_head.anchor_generator
    assert len(a.scales) * len(a.ratios) == len(b.scales) * len(b.ratios)
    assert a.strides == b.strides


def test_data_root_from_the_environment(monkeypatch):
    monkeypatch.setenv('COCO_ROOT', '/datasets/coco2017/')
    cfg = load_config(PRETRAIN)
    assert {cfg[f'{s}_dataloader'].dataset.data_root for s in ('train', 'val', 'test')} == {
        '/datasets/coco2017/'}
    assert cfg.test_evaluator.ann_file == '/datasets/coco2017/annotations/instances_val2017.json'

"""Reading configs the plugin's way: the slice-input owner, the evaluator check, and config text
read from a checkpoint without running it. (The configs in configs/ are checked against these
rules in tests/test_configs/.)"""
import os.path as osp

import pytest
from mmengine.config import Config

import mp3d_mmdet  # noqa: F401  (registers the components the checks look up)
from mp3d_mmdet.utils.config import (ConfigError, check_evaluator_inputs, load_config,
                                     parse_config_text, resolve_config)

MAIN = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'mp3d_fpn_deeplesion_2x.py')


def _plain_config(**top_level) -> Config:
    """A minimal config: MP3D backbone, GTM, one loader per dataloader, FROC evaluators."""
    loader = lambda: [dict(type='LoadCTSlices'), dict(type='PackDetInputs', meta_keys=(  # noqa
        'img_id', 'instances', 'slice_interval'))]
    return Config(dict(
        model=dict(backbone=dict(type='MP3DResNet'),
                   neck=[dict(type='GroupTransform', in_channels=[4, 8]), dict(type='FPN')]),
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
            type='DeepLesionDataset', pipeline=loader()))),
        val_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(type='DeepLesionDataset', pipeline=loader())])),
        test_dataloader=dict(dataset=dict(type='DeepLesionDataset', pipeline=loader())),
        val_evaluator=dict(type='FROCMetric'), test_evaluator=[dict(type='FROCMetric')],
        **top_level))


def test_top_level_values_reach_every_place_through_dataset_wrappers():
    cfg = _plain_config(num_slices=5, slice_interval=2.0, hu_window=(-100, 300))
    filled = resolve_config(cfg)
    loaders = [cfg.train_dataloader.dataset.dataset.pipeline[0],
               cfg.val_dataloader.dataset.datasets[0].pipeline[0],
               cfg.test_dataloader.dataset.pipeline[0]]
    for loader in loaders:
        assert (loader.num_slices, loader.slice_interval, tuple(loader.hu_window)) == (
            5, 2.0, (-100, 300))
    assert cfg.model.backbone.num_slices == 5 and cfg.model.neck[0].num_slices == 5
    assert 'model.backbone.num_slices = 5' in filled
    assert 'val_dataloader.dataset.datasets[0].pipeline[0].num_slices = 5' in filled
    assert resolve_config(cfg) == []  # idempotent: nothing left to fill, nothing disagrees


def test_the_adapter_gets_the_backbone_depths():
    cfg = _plain_config(num_slices=9)
    cfg.model.backbone.slice_pooling = 'isotropic'
    cfg.model.backbone.out_indices = (2, 3)
    resolve_config(cfg)
    assert cfg.model.neck[0].num_slices == [2, 1]  # stages 3 and 4 of [5, 3, 2, 1]


def test_without_any_value_the_modules_say_what_is_missing():
    from mmdet.registry import MODELS
    cfg = _plain_config()
    resolve_config(cfg)  # places agree (all unset)
    with pytest.raises(ValueError, match='MP3DResNet: num_slices is not set'):
        MODELS.build(cfg.model.backbone)


def test_the_froc_metric_inputs_are_checked_before_training():
    cfg = _plain_config(num_slices=3)
    check_evaluator_inputs(cfg)
    cfg.test_dataloader.dataset.pipeline[1].meta_keys = ('img_id', 'img_path')
    with pytest.raises(ConfigError, match=r"test_evaluator FROCMetric reads \['instances', "
                       r"'slice_interval'\] from every data sample, but "
                       r'test_dataloader.dataset.pipeline\[1\] \(PackDetInputs\) does not pack '
                       r"them: add \['instances', 'slice_interval'\] to its meta_keys"):
        check_evaluator_inputs(cfg)
    cfg.test_evaluator = [dict(type='FROCMetric', breakdowns=False)]
    with pytest.raises(ConfigError, match=r"reads \['instances'\]"):
        check_evaluator_inputs(cfg)
    del cfg.test_dataloader.dataset.pipeline[1]['meta_keys']  # mmdet's defaults lack them
    with pytest.raises(ConfigError, match=r"reads \['instances'\]"):
        check_evaluator_inputs(cfg)


def test_load_config_merges_options_before_resolving():
    cfg = load_config(MAIN, {'num_slices': 3, 'hu_window': (-175, 275)})
    assert cfg.model.backbone.num_slices == 3
    assert tuple(cfg.val_dataloader.dataset.pipeline[0].hu_window) == (-175, 275)


def test_config_text_is_read_without_running_it(tmp_path):
    marker = tmp_path / 'ran'
    text = f"""
model = dict(type='FasterRCNN', backbone=dict(type='MP3DResNet', num_slices=9))
test_pipeline = [dict(type='SliceWiseResize', scale=(160, 160), keep_ratio=True)]
hu_window = (-1024, 1000 + 50)
evil = __import__('os').system('touch {marker}')
numbers = [1, 2.5, -3, None, True, 'x', {{'a': 1}}]
"""
    values = parse_config_text(text)
    assert values['model'] == dict(type='FasterRCNN',
                                   backbone=dict(type='MP3DResNet', num_slices=9))
    assert values['test_pipeline'][0]['scale'] == (160, 160)
    assert values['hu_window'] == (-1024, None)  # arithmetic beyond a sign is not evaluated
    assert values['evil'] is None and not marker.exists()
    assert values['numbers'] == [1, 2.5, -3, None, True, 'x', {'a': 1}]
    with pytest.raises(ValueError, match='not config text'):
        parse_config_text('model = dict(')

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
    check_evaluator_inputs(cfg)  # 'instances' packed
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    del test_pipeline[1]['meta_keys']  # mmdet's default packing: no 'instances'
    with pytest.raises(ConfigError, match=(
            r'^FROCMetric needs the ground truth, but test_dataloader.dataset.pipeline neither '
            r'loads boxes \(LoadAnnotations\) nor packs .instances.: add .* or .instances. to '
            r'the meta_keys of test_dataloader.dataset.pipeline\[1\] \(PackDetInputs\)$')):
        check_evaluator_inputs(cfg)
    # the ground truth from gt_instances: annotations loaded after the resize
    test_pipeline[1:1] = [dict(type='SliceWiseResize', scale=(64, 64), keep_ratio=True),
                          dict(type='LoadAnnotations')]
    check_evaluator_inputs(cfg)
    test_pipeline[1], test_pipeline[2] = test_pipeline[2], test_pipeline[1]
    with pytest.raises(ConfigError, match=r'test_dataloader.dataset.pipeline\[2\] '
                       r'\(SliceWiseResize\) comes after it and moves them'):
        check_evaluator_inputs(cfg)
    cfg.test_evaluator = [dict(type='CocoMetric')]  # other metrics are not checked
    check_evaluator_inputs(cfg)


def _written_out_config(**top_level) -> Config:
    """:func:`_plain_config` with every place written out, as the configs in configs/ are."""
    cfg = _plain_config(num_slices=9, slice_interval=2.5, hu_window=(-1024, 1050))
    resolve_config(cfg)
    cfg.merge_from_dict(top_level)
    return cfg


def test_a_written_out_config_follows_a_new_top_level_value():
    cfg = _written_out_config(num_slices=13)
    filled = resolve_config(cfg)
    assert 'model.backbone.num_slices = 13 (was 9)' in filled
    assert "model.neck[0].num_slices = 13 (was 9; the backbone's output depths)" in filled
    assert cfg.test_dataloader.dataset.pipeline[0].num_slices == 13
    assert cfg.train_dataloader.dataset.dataset.pipeline[0].slice_interval == 2.5
    assert resolve_config(cfg) == []
    iso = _written_out_config()
    iso.model.backbone.slice_pooling = 'isotropic'
    iso.model.neck[0].num_slices = [5, 3]  # written out for 9 slices
    iso.num_slices = 13
    resolve_config(iso)
    assert iso.model.neck[0].num_slices == [7, 4]


def test_a_place_set_by_hand_is_refused_even_when_written_out():
    cfg = _written_out_config(num_slices=13)
    cfg.model.backbone.num_slices = 13  # by hand; the loaders still hold 9
    with pytest.raises(ConfigError, match=(
            r'^num_slices = 13 \(top level\) but train_dataloader.dataset.dataset.pipeline\[0\].'
            r'num_slices = 9: the places of num_slices follow the top level; change it there '
            r'\(e.g. --cfg-options num_slices=...\), not in one place$')):
        resolve_config(cfg)
    cfg = _written_out_config(hu_window=(-100, 300))
    del cfg.val_dataloader.dataset.datasets[0].pipeline[0]['hu_window']
    with pytest.raises(ConfigError, match=(
            r'^hu_window = \(-100, 300\) \(top level\) but train_dataloader.dataset.dataset.'
            r'pipeline\[0\].hu_window = \(-1024, 1050\) \(val_dataloader.dataset.datasets\[0\].'
            r'pipeline\[0\].hu_window leaves it out, so the places written out count as set by '
            r'hand: write hu_window in every place or in none\): ')):
        resolve_config(cfg)
    adapter = _written_out_config()
    adapter.model.backbone.slice_pooling = 'isotropic'  # the written-out GTM still says 9
    with pytest.raises(ConfigError, match=(
            r"model.neck\[0\].num_slices = 9 but the backbone \(MP3DResNet, num_slices=9\) "
            r'outputs slice depths \[5, 3\]: the neck adapter follows the backbone; set its '
            r'num_slices to \[5, 3\] or leave it out')):
        resolve_config(adapter)


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

"""Which test pipelines give FROCMetric its ground truth in original image coordinates: the
rule on config dicts and on built transforms, and the check mmengine's val / test loop runs
through ``dataset_meta`` before the first iteration."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import TestLoop, ValLoop
from mmengine.structures import InstanceData
from torch.utils.data import DataLoader

import mp3d_mmdet  # noqa: F401  (registers the transforms)
from mmdet.registry import DATASETS, TRANSFORMS
from mp3d_mmdet.synthetic import make_synthetic_deeplesion
from mp3d_mmdet.evaluation import FROCMetric
from mp3d_mmdet.evaluation.metrics import check_froc_pipeline, record_from_data_sample
from mp3d_mmdet.utils.config import ConfigError

LOAD = dict(type='LoadCTSlices', num_slices=3)
RESIZE = dict(type='SliceWiseResize', scale=(64, 64), keep_ratio=True)
ANNOTATIONS = dict(type='LoadAnnotations', with_bbox=True)
PACK = dict(type='PackDetInputs')  # mmdet's default meta_keys: no 'instances'
PLUGIN_PACK = dict(type='PackDetInputs', meta_keys=('img_id', 'instances', 'slice_interval'))


def test_instances_in_the_metainfo_are_read_whatever_the_transforms():
    pipeline = [LOAD, ANNOTATIONS, RESIZE, PLUGIN_PACK]
    assert check_froc_pipeline(pipeline, 'p') == 'instances'


def test_mmdet_default_packing_with_annotations_loaded_after_the_resize():
    assert check_froc_pipeline([LOAD, RESIZE, ANNOTATIONS, PACK], 'p') == 'gt_instances'
    # transforms that leave the boxes where they are may follow
    assert check_froc_pipeline([LOAD, ANNOTATIONS, dict(type='Pad', size_divisor=32), PACK],
                               'p') == 'gt_instances'
    assert check_froc_pipeline([LOAD, RESIZE], 'p') is None  # another packer: not checked


def test_annotations_loaded_before_the_resize_are_refused_naming_the_fix():
    with pytest.raises(ConfigError, match=(
            r'^FROCMetric compares the predictions \(original image coordinates\) with the '
            r'boxes LoadAnnotations loads at p\[1\], but p\[2\] \(SliceWiseResize\) comes after '
            r"it and moves them: load the annotations after it, as mmdet's test pipelines do, "
            r"or add 'instances' to the meta_keys of p\[3\] \(PackDetInputs\)$")):
        check_froc_pipeline([LOAD, ANNOTATIONS, RESIZE, PACK], 'p')
    flip = dict(type='RandomFlip', prob=1.0)
    with pytest.raises(ConfigError, match=r'p\[3\] \(RandomFlip\) comes after'):
        check_froc_pipeline([LOAD, RESIZE, ANNOTATIONS, flip, PACK], 'p')


def test_no_ground_truth_at_all_is_refused():
    with pytest.raises(ConfigError, match=(
            r'FROCMetric needs the ground truth, but p neither loads boxes \(LoadAnnotations\) '
            r"nor packs 'instances': add dict\(type='LoadAnnotations', with_bbox=True\) after "
            r"the resize, or 'instances' to the meta_keys of p\[2\] \(PackDetInputs\)")):
        check_froc_pipeline([LOAD, RESIZE, PACK], 'p')
    with pytest.raises(ConfigError, match='neither loads boxes'):
        check_froc_pipeline([LOAD, dict(ANNOTATIONS, with_bbox=False), PACK], 'p')
    with pytest.raises(ConfigError, match=r"does not pack it: add 'img_id' to its meta_keys"):
        check_froc_pipeline([LOAD, dict(type='PackDetInputs', meta_keys=('instances', ))], 'p')


def test_built_transforms_follow_the_same_rule():
    good = [TRANSFORMS.build(t) for t in (LOAD, RESIZE, ANNOTATIONS, PACK)]
    assert check_froc_pipeline(good, 'p') == 'gt_instances'
    bad = [TRANSFORMS.build(t) for t in (LOAD, ANNOTATIONS, RESIZE, PACK)]
    with pytest.raises(ConfigError, match=r'p\[2\] \(SliceWiseResize\) comes after'):
        check_froc_pipeline(bad, 'p')


class _Dataset:
    """The parts of a built dataset a loop and the check read."""

    def __init__(self, pipeline):
        self.pipeline = Compose([TRANSFORMS.build(t) for t in pipeline])
        self.metainfo = dict(classes=('lesion', ))

    def __len__(self):
        return 1


class _Concat(_Dataset):
    """A wrapper as mmengine's ConcatDataset holds its datasets."""

    def __init__(self, datasets):
        self.datasets = datasets
        self.metainfo = datasets[0].metainfo


def _loop(loop_type, dataset, metric):
    runner = SimpleNamespace(visualizer=SimpleNamespace(dataset_meta=None))
    return loop_type(runner, DataLoader(dataset), Evaluator(metric))


@pytest.mark.parametrize('loop_type, split', [(ValLoop, 'val'), (TestLoop, 'test')])
def test_the_loop_refuses_its_pipeline_when_it_sets_the_dataset_meta(loop_type, split):
    metric = FROCMetric()
    with pytest.raises(ConfigError, match=(
            rf'loads at {split}_dataloader.dataset.pipeline\[1\], but '
            rf'{split}_dataloader.dataset.pipeline\[2\] \(SliceWiseResize\) comes after it')):
        _loop(loop_type, _Dataset([LOAD, ANNOTATIONS, RESIZE, PACK]), metric)
    loop = _loop(loop_type, _Dataset([LOAD, RESIZE, ANNOTATIONS, PACK]), metric)
    assert metric.dataset_meta == dict(classes=('lesion', ))
    assert loop.evaluator.metrics == [metric]


def test_the_loop_check_walks_dataset_wrappers():
    wrapped = _Concat([_Dataset([LOAD, RESIZE, ANNOTATIONS, PACK]),
                       _Dataset([LOAD, RESIZE, PACK])])
    with pytest.raises(ConfigError, match=r'but val_dataloader.dataset.datasets\[1\].pipeline '
                       r'neither loads boxes'):
        _loop(ValLoop, wrapped, FROCMetric())


def test_dataset_meta_set_by_hand_checks_nothing():
    metric = FROCMetric()
    metric.dataset_meta = dict(classes=('lesion', ))
    assert metric.dataset_meta == dict(classes=('lesion', ))


def test_annotations_loaded_after_the_resize_are_the_original_boxes(tmp_path):
    """The premise of reading gt_instances: on a real DeepLesion item, mmdet's LoadAnnotations
    after the resize packs the boxes of ``instances`` unchanged, while the image is resized."""
    root = str(tmp_path / 'DeepLesion')
    make_synthetic_deeplesion(root, num_patients=3, seed=4, image_size=64, progress=False)
    pack = dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                 'img_shape', 'scale_factor', 'instances'))
    init_default_scope('mmdet')
    dataset = DATASETS.build(dict(
        type='DeepLesionDataset', data_root=root + '/', split='val', test_mode=True,
        pipeline=[LOAD, dict(RESIZE, scale=(160, 160)), ANNOTATIONS, pack]))
    item = next(dataset[i] for i in range(len(dataset)) if dataset[i]['data_samples'].instances)
    sample = item['data_samples']
    assert sample.scale_factor[0] > 1.5 and item['inputs'].shape[-1] > 100  # resized up
    sample.pred_instances = InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0))
    with_instances = sample.to_dict()
    packed = sample.to_dict()
    del packed['instances']  # as mmdet's default meta_keys leave it: gt_instances is read
    expected = record_from_data_sample(with_instances, require_metadata=False)['gt_bboxes']
    assert len(expected) > 0
    np.testing.assert_allclose(
        record_from_data_sample(packed, require_metadata=False)['gt_bboxes'], expected)

"""A tiny COCO-format detection set and a tiny Faster R-CNN config for runner-level tests.

Used by the foundation tests (plugin import through ``custom_imports``, checkpoint/resume,
``mim train``) so that they exercise mmdet's real runner without DeepLesion data.
"""
import json
import os.path as osp
import shutil
from pathlib import Path
from typing import Dict

import cv2
import numpy as np

IMAGE_SIZE = 64


def write_tiny_coco(root: Path, num_images: int = 4, seed: int = 0) -> Dict[str, str]:
    """Write ``num_images`` 64x64 RGB PNG images with one bright square each and a COCO json.

    Returns:
        dict with ``data_root`` and ``ann_file`` (relative to it).
    """
    rng = np.random.default_rng(seed)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img = rng.integers(0, 60, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        x, y = (int(v) for v in rng.integers(4, 36, 2))
        w, h = (int(v) for v in rng.integers(12, 24, 2))
        img[y:y + h, x:x + w] = 220
        name = f'{i:03d}.png'
        cv2.imwrite(str(root / 'images' / name), img)
        images.append(dict(id=i + 1, file_name=name, width=IMAGE_SIZE, height=IMAGE_SIZE))
        annotations.append(dict(id=i + 1, image_id=i + 1, category_id=1, bbox=[x, y, w, h],
                                area=w * h, iscrowd=0))
    ann = dict(images=images, annotations=annotations,
               categories=[dict(id=1, name='square')])
    (root / 'ann.json').write_text(json.dumps(ann))
    return dict(data_root=str(root) + osp.sep, ann_file='ann.json')


def tiny_faster_rcnn_config(data_root: str, work_dir: str, max_iters: int = 2,
                            checkpoint_interval: int = 1) -> str:
    """Return the text of a tiny Faster R-CNN (ResNet-18 FPN) config using the plugin.

    It inherits mmdet's bases, imports ``mp3d_mmdet`` through ``custom_imports`` and uses the
    plugin's ``DeviceAwareRunner`` so that the AMP/NCCL settings of GPU configs would also work.
    """
    return f"""
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mp3d_mmdet'], allow_failed_imports=False)
runner_type = 'DeviceAwareRunner'
work_dir = {work_dir!r}
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(depth=18, init_cfg=None, base_channels=16, frozen_stages=-1),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=1)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
dataset = dict(
    type='CocoDataset', data_root={data_root!r}, ann_file='ann.json',
    data_prefix=dict(img='images/'), metainfo=dict(classes=('square', )),
    filter_cfg=dict(filter_empty_gt=False))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(64, 64), keep_ratio=True), dict(type='PackDetInputs')]))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, test_mode=True, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                              'img_shape', 'scale_factor'))]))
test_evaluator = dict(type='CocoMetric', ann_file={data_root!r} + 'ann.json', metric='bbox')
test_cfg = dict(type='TestLoop')
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval=10000)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end={max_iters},
                        milestones=[1], gamma=0.1)]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval={checkpoint_interval}, by_epoch=False),
    logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
"""


def tiny_coco_2017(root: Path) -> str:
    """The tiny set in COCO 2017's layout with COCO's 80 categories (its boxes: 'person');
    returns the data root."""
    from mmdet.datasets import CocoDataset
    info = write_tiny_coco(root, num_images=4, seed=0)
    ann = json.loads((root / info['ann_file']).read_text())
    assert {a['category_id'] for a in ann['annotations']} == {1}
    classes = CocoDataset.METAINFO['classes']
    assert classes[0] == 'person'
    ann['categories'] = [dict(id=i + 1, name=name) for i, name in enumerate(classes)]
    (root / 'annotations').mkdir()
    for split in ('train2017', 'val2017'):
        (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps(ann))
        shutil.copytree(root / 'images', root / split)
    return info['data_root']

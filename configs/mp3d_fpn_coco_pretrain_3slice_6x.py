# Supervised 3D pre-training on COCO (Zhang et al., MICCAI 2020, section 2.2 and Fig. 2): the
# MP3D FPN of the DeepLesion configs -- MP3D-63, group norm, GTM, FPN, Faster R-CNN -- trained
# on COCO 2017 detection (80 classes) with every RGB image read as 3 adjacent slices
# (RGBToSlices: slice 0 = R, 1 = G, 2 = B), the slice axis never pooled, for 72 epochs.
#   COCO_ROOT=/path/to/coco/ mim train mmdet configs/mp3d_fpn_coco_pretrain_3slice_6x.py
#   mp3d-convert-pretraining-checkpoint work_dirs/mp3d_fpn_coco_pretrain_3slice_6x/epoch_72.pth \
#       work_dirs/pretrained/mp3d_fpn_coco_3slice_to_9slice.pth --num-slices 9
# then fine-tune with configs/mp3d_fpn_deeplesion_2x_coco-pretrain.py (docs/pretraining.md).
#
# Data: the COCO 2017 layout mmdet expects under data_root (annotations/instances_{train,val}
# 2017.json, train2017/, val2017/). The root is set once, overridable without editing files:
#   COCO_ROOT=/path/to/coco mim train mmdet CONFIG  (default: data/coco; trailing slash optional)
_base_ = [
    './_base_/models/mp3d_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mp3d_mmdet'], allow_failed_imports=False)
# AMP, NCCL on GPUs; the same config on a CPU-only machine (docs/running.md).
runner_type = 'DeviceAwareRunner'

data_root = '{{$COCO_ROOT:data/coco}}'.rstrip('/') + '/'

# 3 slices (= the 3 colour channels): the backbone and the GTM hold the top-level num_slices
# written out (docs/configs.md).
# The data preprocessor of the model base (mean=[127.5], std=[127.5], bgr_to_rgb=False) is
# kept: RGBToSlices leaves the intensities on [0, 255] like the CT loader, so COCO and CT inputs
# both reach [-1, 1].
num_slices = 3
slice_neck = _base_.model.neck
slice_neck[0].num_slices = num_slices
model = dict(
    backbone=dict(num_slices=num_slices),
    neck=slice_neck,
    # mmdet's COCO anchors (8 x stride: 32 ... 512 px at strides 4 ... 64); the DeepLesion
    # configs use 4 x stride (16 ... 256 px). Same number of anchors per location, so the RPN
    # weights still transfer (mp3d-convert-pretraining-checkpoint carries them) -- as an
    # initialisation that the fine-tuning re-fits to the smaller anchors.
    rpn_head=dict(anchor_generator=dict(scales=[8])),
    roi_head=dict(bbox_head=dict(num_classes=80)))

# mmdet's COCO pipelines with RGBToSlices right after loading: float32 H x W x 3 slices
# (R, G, B) from the BGR uint8 image that LoadImageFromFile decodes.
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='RGBToSlices'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='RGBToSlices'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/instances_val2017.json', metric='bbox')
test_evaluator = val_evaluator

# 6x = 72 epochs (the paper's pre-training length; "6x" of He et al., "Rethinking ImageNet
# Pre-training", ICCV 2019). The lr steps follow the convention of that paper and of mmdet's
# 1x/2x/6x COCO schedules: divide by 10 near the end regardless of the length -- He et al.
# drop it in the last 60k and last 20k iterations (about 8 and 2.7 COCO epochs at 16 images
# per iteration), mmdet's 2x steps after epochs 16 and 22 of 24 and its scratch 6x after 65
# and 71 of 73. For 72 epochs: after epochs 64 and 70. Linear warm-up over 500 iterations.
max_epochs = 72
# COCO val (5k images) every 6 epochs and after the last one.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=6)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[64, 70],
         gamma=0.1)
]
# As the DeepLesion configs: SGD lr 0.02 for 16 images per iteration (8 GPUs x 2 images;
# `--auto-scale-lr` scales it to the actual batch), momentum 0.9, weight decay 1e-4, gradient
# clipping, mixed precision. Like mmdet's GN-from-scratch 6x recipe, no weight decay on the
# group-norm parameters.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    paramwise_cfg=dict(norm_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# CrashSafeCheckpointHook: mmengine's CheckpointHook, deleting superseded checkpoints only
# once the new one is complete (a run killed at any moment can be resumed).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook', interval=1,
                                     max_keep_ckpts=3, save_best='coco/bbox_mAP', rule='greater'))
# A progress bar over validation and test (mmengine logs them only every 50 images).
custom_hooks = [dict(type='EvaluationProgressHook')]

# MP3D FPN (Zhang et al., MICCAI 2020) on DeepLesion: MP3D-63 with group norm, 9 slices at
# 2.5 mm, GTM, FPN, Faster R-CNN heads; the 2x schedule with mixed precision.
#   mim train mmdet configs/mp3d_fpn_deeplesion_2x.py
#   mim test  mmdet configs/mp3d_fpn_deeplesion_2x.py --checkpoint work_dirs/.../epoch_24.pth
_base_ = [
    './_base_/models/mp3d_fpn.py',
    './_base_/datasets/deeplesion.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mp3d_mmdet'], allow_failed_imports=False)
# AMP, NCCL on GPUs; the same config on a CPU-only machine (docs/running.md).
runner_type = 'DeviceAwareRunner'

# 2x: 24 epochs, lr 0.02 divided by 10 after epochs 16 and 22, linear warm-up over the first
# 500 iterations (all from mmdet's schedule_2x). SGD momentum 0.9, weight decay 1e-4.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2))
# lr 0.02 is mmdet's rate for 16 images per iteration (e.g. 8 GPUs x 2 images);
# `mim train ... --auto-scale-lr` scales it linearly to the actual total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# CrashSafeCheckpointHook: mmengine's CheckpointHook, deleting superseded checkpoints only
# once the new one is complete (a run killed at any moment can be resumed).
default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook', interval=1,
                                     max_keep_ckpts=3, save_best='froc/mean_0.5-4', rule='greater'))
# A progress bar over validation and test (mmengine logs them only every 50 images).
custom_hooks = [dict(type='EvaluationProgressHook')]

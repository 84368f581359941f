# MP3D FPN (Zhang et al., MICCAI 2020): MP3D-63 backbone (pseudo-3D ResNet-50 layout, group
# norm, no pooling along the slice axis) -> GTM (group transform) -> FPN -> Faster R-CNN heads
# for one class ('lesion'). 45,156,437 parameters with 9 slices (paper: 45.16 M); see
# docs/model_complexity.md (tools/analysis/complexity.py).
#
# Slice count: the input has N slices as N channels. The top-level `num_slices` below owns
# it; the backbone, the GTM (the backbone's output depths) and every loader hold it written
# out, so that mmdet's own entry points (init_detector, the analysis tools) build this model
# too. The plugin's entry points (its runner, its tools) move every place with a new
# top-level value -- `num_slices = 5` in a child config, or `--cfg-options num_slices=5` --
# and refuse a place set to another value by hand (mp3d_mmdet/utils/config.py,
# docs/configs.md). A shipped config that changes it writes the places out too.
# Variants by overriding keys:
#   MR3D FPN (full 3D):   model = dict(backbone=dict(type='MR3DResNet', conv_type='3d'))
#   CTM instead of GTM:   slice_neck = _base_.model.neck
#                         slice_neck[0] = dict(type='CenterSliceTransform', num_slices=9)
#   isotropic pooling:    slice_neck = _base_.model.neck
#                         slice_neck[0].num_slices = [5, 3, 2, 1]  (the depths left of 9)
#                         model = dict(backbone=dict(slice_pooling='isotropic'),
#                                      neck=slice_neck)
#   2D-inflated init:     backbone=dict(init_cfg=dict(type='Inflated2DPretrained',
#                                                     checkpoint='torchvision://resnet50'))
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

num_slices = 9  # the paper's 9 slices

model = dict(
    # The loader stacks the N slices (HU mapped to [0, 255]) as N channels: one mean/std
    # for all of them, no channel flip.
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5],
        std=[127.5],
        bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='MP3DResNet',
        depth=50,  # MP3D-63: stages [3, 4, 6, 3], P3D-A/B/C cycling by block index
        num_slices=num_slices,
        conv_type='p3d',
        slice_pooling='none',
        out_indices=(0, 1, 2, 3),
        # Trained from scratch or from a COCO-pretrained MP3D FPN (the paper's 3D
        # pre-training); all stages train, as group norm is used throughout.
        frozen_stages=-1,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=[
        # num_slices: the backbone's output depths (every stage keeps the N slices)
        dict(type='GroupTransform', in_channels=[256, 512, 1024, 2048], num_slices=num_slices),
        dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
    ],
    rpn_head=dict(
        anchor_generator=dict(
            type='AnchorGenerator',
            scales=[4],  # anchor sizes 16, 32, 64, 128, 256 at strides 4 ... 64
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_head=dict(type='Shared2FCBBoxHead', fc_out_channels=1024, num_classes=1)),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                 min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=100)))

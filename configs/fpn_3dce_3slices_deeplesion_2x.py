# Table 1: FPN + 3DCE with 3 slices (1 group(s) of 3 through the shared 2D ResNet-50).
_base_ = './fpn_3dce_9slices_deeplesion_2x.py'
num_slices = 3
# The places that take the slice count, written out so that mmdet's own entry points
# (init_detector, the analysis tools) build this model too (docs/configs.md).
model = dict(backbone=dict(num_slices=num_slices))
train_pipeline = _base_.train_pipeline
train_pipeline[0].num_slices = num_slices
test_pipeline = _base_.test_pipeline
test_pipeline[0].num_slices = num_slices
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

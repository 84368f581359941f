# Table 2 of the paper: MP3D FPN with 7 input slices (2.5 mm apart), everything else as
# mp3d_fpn_deeplesion_2x.py. The paper's row was initialised from its COCO 3D pre-training:
# add
#   --cfg-options load_from=<the output of mp3d-convert-pretraining-checkpoint ... --num-slices 7>
# (docs/pretraining.md)
_base_ = './mp3d_fpn_deeplesion_2x.py'
num_slices = 7
# The places that take the slice count (the GTM, the backbone, the loaders), written out so
# that mmdet's own entry points (init_detector, the analysis tools) build this model too
# (docs/configs.md).
slice_neck = _base_.model.neck
slice_neck[0].num_slices = num_slices
model = dict(backbone=dict(num_slices=num_slices), neck=slice_neck)
train_pipeline = _base_.train_pipeline
train_pipeline[0].num_slices = num_slices
test_pipeline = _base_.test_pipeline
test_pipeline[0].num_slices = num_slices
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# Table 2: MP3D FPN with 5 input slices. The slice count appears in the loader, the
# backbone and the GTM; they must agree (a mismatch raises at the first forward pass).
_base_ = './mp3d_fpn_deeplesion_2x.py'
num_slices = 5
train_pipeline = _base_.train_pipeline
train_pipeline[0].num_slices = num_slices
test_pipeline = _base_.test_pipeline
test_pipeline[0].num_slices = num_slices
slice_neck = _base_.model.neck
slice_neck[0].num_slices = num_slices
model = dict(backbone=dict(num_slices=num_slices), neck=slice_neck)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

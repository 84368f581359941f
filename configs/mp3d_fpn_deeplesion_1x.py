# Table 4: MP3D FPN without pre-training, 1x schedule (12 epochs, lr / 10 after
# epochs 8 and 11).
_base_ = './mp3d_fpn_deeplesion_2x.py'
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]

# Table 4: MP3D FPN without pre-training, 6x schedule (72 epochs, lr / 10 after
# epochs 48 and 66).
_base_ = './mp3d_fpn_deeplesion_2x.py'
max_epochs = 72
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[48, 66], gamma=0.1)
]

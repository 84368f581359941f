# Table 5: MP3D FPN without pre-training, 2x, on 80 % of the training patients (seeded).
_base_ = './mp3d_fpn_deeplesion_2x.py'
train_dataloader = dict(dataset=dict(data_fraction=0.8, fraction_seed=0))

# Table 1: MR3D FPN (modified 3D ResNet): the same network with every pseudo-3D pair replaced
# by a full 3x3x3 convolution, 9 slices, no slice pooling, GTM.
_base_ = './mp3d_fpn_deeplesion_2x.py'
model = dict(backbone=dict(type='MR3DResNet', conv_type='3d'))

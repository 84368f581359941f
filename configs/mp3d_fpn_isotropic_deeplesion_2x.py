# Table 3: isotropic pooling, as in the original P3D ResNet: the slice axis is pooled together
# with the spatial axes, so the four stages see 5, 3, 2 and 1 of the 9 slices, and the GTM
# fuses that many per level (computed from the backbone: mp3d_mmdet/utils/config.py).
_base_ = './mp3d_fpn_deeplesion_2x.py'
model = dict(backbone=dict(slice_pooling='isotropic'))

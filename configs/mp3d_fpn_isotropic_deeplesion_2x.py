# Table 3: isotropic pooling, as in the original P3D ResNet: the slice axis is pooled together
# with the spatial axes, so the four stages see 5, 3, 2 and 1 of the 9 slices, and the GTM
# fuses that many per level (mp3d_mmdet.utils.slice_depths(9, 'isotropic'); written out for
# mmdet's own entry points, and moved by the plugin's with a new num_slices: docs/configs.md).
_base_ = './mp3d_fpn_deeplesion_2x.py'
slice_neck = _base_.model.neck
slice_neck[0].num_slices = [5, 3, 2, 1]
model = dict(backbone=dict(slice_pooling='isotropic'), neck=slice_neck)

# Table 1: FPN + 3DCE (Yan et al. 2018) re-implemented as in the paper: the 9 slices are cut
# into 3 groups of 3, each group goes through one shared 2D ResNet-50 (GN), and the group
# features are fused per level by a 1x1 conv; then mmdet's plain FPN and the same heads. The
# slice count is the top-level num_slices (9, from the base), written out in the backbone.
_base_ = './mp3d_fpn_deeplesion_2x.py'
model = dict(
    backbone=dict(_delete_=True, type='ResNet3DCE', num_slices=_base_.num_slices,
                  slices_per_group=3),
    neck=dict(_delete_=True, type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
              num_outs=5))

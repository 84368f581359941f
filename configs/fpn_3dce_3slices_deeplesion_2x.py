# Table 1: FPN + 3DCE with 3 slices (1 group(s) of 3 through the shared 2D ResNet-50).
_base_ = './fpn_3dce_9slices_deeplesion_2x.py'
num_slices = 3

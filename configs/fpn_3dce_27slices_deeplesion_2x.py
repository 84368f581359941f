# Table 1: FPN + 3DCE with 27 slices (9 group(s) of 3 through the shared 2D ResNet-50).
_base_ = './fpn_3dce_9slices_deeplesion_2x.py'
num_slices = 27

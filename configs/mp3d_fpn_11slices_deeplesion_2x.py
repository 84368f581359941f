# Table 2 of the paper: MP3D FPN with 11 input slices (2.5 mm apart), everything else as
# mp3d_fpn_deeplesion_2x.py. The loaders, the backbone and the GTM take the slice count from
# this one line. The paper's row was initialised from its COCO 3D pre-training: add
#   --cfg-options load_from=<the output of mp3d-convert-pretraining-checkpoint ... --num-slices 11>
# (docs/pretraining.md)
_base_ = './mp3d_fpn_deeplesion_2x.py'
num_slices = 11

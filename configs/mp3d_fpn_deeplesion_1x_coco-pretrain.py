# Table 4: MP3D FPN, 1x, initialised from the COCO 3D pre-training (see the 2x variant).
_base_ = './mp3d_fpn_deeplesion_1x.py'
load_from = 'work_dirs/pretrained/mp3d_fpn_coco_3slice_to_9slice.pth'

# Table 4 (and Table 1's MP3D FPN row): MP3D FPN, 2x, initialised from the supervised 3D
# pre-training on COCO (3 slices = R, G, B; configs/mp3d_fpn_coco_pretrain_3slice_6x.py),
# adapted to 9 slices (GTM resampled, 80-class classifier dropped) by
#   mp3d-convert-pretraining-checkpoint <coco-pretrain checkpoint> \
#       work_dirs/pretrained/mp3d_fpn_coco_3slice_to_9slice.pth --num-slices 9
_base_ = './mp3d_fpn_deeplesion_2x.py'
load_from = 'work_dirs/pretrained/mp3d_fpn_coco_3slice_to_9slice.pth'

# Table 1's MP3D FPN row from the authors' own COCO-pretrained MP3D-63 (mp3d63-d720bda1.pth,
# linked from the official MP3D repository's README; 3 slices, 80 classes), converted to this
# plugin's layout, 9 slices and 1 class (docs/pretraining.md, "The authors' weights"):
#   mp3d-convert-official-checkpoint checkpoints/mp3d63-d720bda1.pth \
#       work_dirs/pretrained/mp3d63_official_9slice.pth --num-slices 9 --num-classes 1
# Everything else is the coco-pretrain recipe (which re-creates that pre-training here).
_base_ = './mp3d_fpn_deeplesion_2x_coco-pretrain.py'
load_from = 'work_dirs/pretrained/mp3d63_official_9slice.pth'

# The demo (`bash tools/demo.sh`): the MP3D FPN of the paper, reduced to train in minutes on a
# CPU, on the synthetic DeepLesion-format set that mp3d-make-synthetic-deeplesion writes
# (160 x 160 slices). Same code path and config family as configs/mp3d_fpn_deeplesion_2x.py:
# MP3D ResNet (pseudo-3D, GN, no slice pooling, 9 slices at 2.5 mm) -> GTM -> FPN -> Faster
# R-CNN; what changes is the width (base 16 channels instead of 64), one block per stage
# instead of [3, 4, 6, 3], the input scale (160 instead of 512), the HU window (see below) and
# the optimiser and schedule (below). The data (demo.sh points DEEPLESION_ROOT at it):
#   mp3d-make-synthetic-deeplesion --out work_dirs/demo/data --preset demo --seed 0
# (60 patients, 160 x 160 px, lesions of 15-45 mm, vessels of at most 25 mm)
_base_ = './mp3d_fpn_deeplesion_2x.py'

data_root = '{{$DEEPLESION_ROOT:work_dirs/demo/data}}'.rstrip('/') + '/'
# the widths; which layers follow them: mp3d_mmdet/models/detector_width.py
from mp3d_mmdet.models.detector_width import reduced_width_detector  # noqa: E402

model = reduced_width_detector(_base_.model, base_channels=16, stage_blocks=[1, 1, 1, 1],
                               fpn_channels=64, fc_channels=256, norm_groups=8)
model['rpn_head']['anchor_generator'] = dict(scales=[2], strides=[4, 8, 16, 32, 64])
model.update(
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

# A soft-tissue window instead of the paper's [-1024, 1050] HU: the synthetic lesions differ
# from their tissue by 25-120 HU, which the paper's 2074 HU window squeezes into a few grey
# levels; a network trained from scratch for minutes learns them much faster at 450 HU.
hu_window = (-175, 275)
train_pipeline = _base_.train_pipeline
train_pipeline[0].hu_window = hu_window  # written out in every loader (docs/configs.md)
train_pipeline[2].scales = [(144, 144), (160, 160), (176, 176)]
test_pipeline = _base_.test_pipeline
test_pipeline[0].hu_window = hu_window
test_pipeline[1].scale = (160, 160)
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=1, persistent_workers=False,
                       dataset=dict(data_root=data_root, pipeline=test_pipeline))
val_evaluator = dict(type='FROCMetric')
test_evaluator = dict(type='FROCMetric', plot_froc=True)

# From scratch on ~110 training slices: 32 epochs of batch 2 with AdamW at lr 2e-3, annealed
# to 0 on a cosine (tuned for the CPU budget; the DeepLesion configs keep the paper's SGD at
# 0.02 for 16 images per iteration). Telling lesions from the synthetic vessels by their
# extent along z takes the network longer to learn than finding blobs; SGD at lr 0.04 with
# steps at epochs 24 and 30 learnt it only partly in this budget, and its results moved by
# several lesions with the CPU's floating-point kernels (docs/demo.md#reproducibility).
max_epochs = 32
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min=0.0, convert_to_iter_based=True)
]
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CrashSafeCheckpointHook', interval=max_epochs, max_keep_ckpts=1,
                    save_best=None))
randomness = dict(seed=0)

# DeepLesion, read straight from the official release (DL_info.csv + Images_png/).
# The data root is set here, once. Override it without editing files with either
#   DEEPLESION_ROOT=/path/to/DeepLesion mim train mmdet CONFIG     (trailing slash optional)
# or --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
#                  test_dataloader.dataset.data_root=...
data_root = '{{$DEEPLESION_ROOT:data/DeepLesion}}'.rstrip('/') + '/'
dataset_type = 'DeepLesionDataset'

# The N-slice input: these top-level values and the slice count (`num_slices`, owned by
# _base_/models/mp3d_fpn.py: the backbone and the neck adapter take it too) are written out in
# every LoadCTSlices below, for mmdet's own tools; the plugin's entry points move them with a
# new top-level value and refuse one set to another value by hand
# (mp3d_mmdet/utils/config.py). The paper: 9 slices at a 2.5 mm interval, HU clipped to
# [-1024, 1050].
slice_interval = 2.5
hu_window = (-1024, 1050)

# Packed into every data sample: the FROC metric reads `instances` and `slice_interval`.
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'instances', 'slice_interval', 'pixel_spacing')
train_pipeline = [
    # num_slices=9: the num_slices of _base_/models/mp3d_fpn.py. flip_slice_order_prob > 0
    # reverses the slice order at random (an augmentation the paper does not use).
    dict(type='LoadCTSlices', num_slices=9, slice_interval=slice_interval, hu_window=hu_window,
         flip_slice_order_prob=0.0),
    dict(type='LoadAnnotations', with_bbox=True),
    # The paper's augmentation: multi-scale {448, 512, 576}, horizontal and vertical flips.
    # SliceWiseResize = mmdet's Resize, resizing the N slices plane by plane so that the image
    # stays (N, H, W) in memory up to PackDetInputs (no channel interleaving and transposing).
    dict(type='RandomChoiceResize', scales=[(448, 448), (512, 512), (576, 576)],
         keep_ratio=True, resize_type='SliceWiseResize'),
    # Horizontal and vertical flips, each with probability 0.5 ('diagonal' = both), recorded
    # exactly in the metadata (two chained RandomFlips would overwrite each other's record).
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
# Evaluation reads the ground truth (original-image boxes and per-lesion metadata) from
# `instances` in the metadata, so the test pipeline loads no annotations.
test_pipeline = [
    dict(type='LoadCTSlices', num_slices=9, slice_interval=slice_interval, hu_window=hu_window),
    dict(type='SliceWiseResize', scale=(512, 512), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='DL_info.csv',
        data_prefix=dict(img='Images_png/'),
        split='train',
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='DL_info.csv',
        data_prefix=dict(img='Images_png/'),
        split='val',
        test_mode=True,
        pipeline=test_pipeline))
# The test loader is the validation loader on the test split.
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))

val_evaluator = dict(type='FROCMetric')
test_evaluator = val_evaluator

"""The tiny MP3D FPN the end-to-end tests train: the configs' code path at 8 base channels,
one block per stage and a 32-channel FPN (config text to paste into a config inheriting one of
the repository's MP3D configs)."""
from typing import Optional


def tiny_mp3d_model(num_slices: Optional[int] = None, model_extra: str = '') -> str:
    """Config lines that shrink the inherited MP3D FPN; with ``num_slices``, also set the
    config's slice count (the backbone, the GTM and the loaders follow it).
    ``model_extra``: more keyword arguments of the ``model`` dict (e.g. ``train_cfg=...``)."""
    slices = '' if num_slices is None else f'num_slices = {num_slices}\n'
    extra = f', {model_extra}' if model_extra else ''
    return f"""
{slices}norm_cfg = dict(type='GN', num_groups=4, requires_grad=True)
stage_channels = [32, 64, 128, 256]
slice_neck = _base_.model.neck
slice_neck[0].in_channels = stage_channels
slice_neck[1].in_channels = stage_channels
slice_neck[1].out_channels = 32
model = dict(
    backbone=dict(base_channels=8, stage_blocks=[1, 1, 1, 1], norm_cfg=norm_cfg),
    neck=slice_neck,
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32),
                  bbox_head=dict(in_channels=32, fc_out_channels=32)){extra})
"""

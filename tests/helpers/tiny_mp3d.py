"""The tiny MP3D FPN the end-to-end tests train: the configs' code path at 8 base channels,
one block per stage and a 32-channel FPN, narrowed by the same function as the demo config
(:func:`mp3d_mmdet.models.detector_width.reduced_width_detector`; config text to paste into a
config inheriting one of the repository's MP3D configs)."""
from typing import Optional


def tiny_mp3d_model(num_slices: Optional[int] = None, model_extra: str = '') -> str:
    """Config lines that narrow the inherited MP3D FPN; with ``num_slices``, also set the
    config's slice count (the backbone, the GTM and the loaders follow it).
    ``model_extra``: more keyword arguments of the ``model`` dict (e.g. ``train_cfg=...``)."""
    slices = '' if num_slices is None else f'num_slices = {num_slices}\n'
    extra = f'model.update(dict({model_extra}))\n' if model_extra else ''
    return f"""
{slices}from mp3d_mmdet.models.detector_width import reduced_width_detector
model = reduced_width_detector(_base_.model, base_channels=8, stage_blocks=[1, 1, 1, 1],
                               fpn_channels=32, fc_channels=32, norm_groups=4)
{extra}"""

"""Group transform module (GTM): 3D feature maps -> 2D maps for a 2D FPN.

Zhang et al., MICCAI 2020, section 2.1: a 3D map ``(C, D, H, W)`` is viewed as a 2D map
``(C*D, H, W)`` and a grouped ``1 x 1`` conv with ``C`` groups (each group = the ``D``
slices of one channel) fuses the slices into ``(C, H, W)``: per output channel ``c``,
``out[c] = sum_d w[c, d] * x[c, d]`` (no bias).
"""
import logging
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS

__all__ = ['GroupTransform', 'resample_slice_weights']

INIT_MODES = ('mean', 'center')


def resample_slice_weights(weight: Tensor, num_slices: int) -> Tensor:
    """Linearly resample GTM weights along the slice axis.

    Args:
        weight: ``(C, D_old, 1, 1)`` GTM conv weight.
        num_slices: the new slice count ``D_new``.

    Returns:
        ``(C, D_new, 1, 1)`` weights, sampled at ``D_new`` points evenly spaced over the
        same z extent as the ``D_old`` slices (align-corners linear interpolation: the
        first, centre and last slices map onto each other), then scaled by
        ``D_old / D_new`` so that the sum over slices -- the response to a volume of
        identical slices -- is kept (exactly for constant and linear weight profiles,
        approximately otherwise). ``D_new = 1`` takes the sum (exact).
    """
    if weight.dim() != 4 or weight.shape[2:] != (1, 1):
        raise ValueError(f'GTM weight must be (C, D, 1, 1), got {tuple(weight.shape)}')
    c, d_old = weight.shape[:2]
    if d_old == num_slices:
        return weight.clone()
    if num_slices < 1:
        raise ValueError(f'num_slices must be >= 1, got {num_slices}')
    if num_slices == 1:
        return weight.sum(dim=1, keepdim=True)
    w = weight[:, :, 0, 0].float().unsqueeze(1)  # (C, 1, D_old)
    # (D_old = 1: align_corners=True repeats the single value)
    new = F.interpolate(w, size=num_slices, mode='linear', align_corners=True)
    new = new * (d_old / num_slices)
    return new.squeeze(1).to(weight.dtype)[:, :, None, None]


@MODELS.register_module()
class GroupTransform(BaseModule):
    """GTM neck adapter: ``(B, C_i, D_i, H_i, W_i)`` -> ``(B, C_i, H_i, W_i)`` per level.

    Args:
        in_channels: channels ``C_i`` of every input level, e.g. ``[256, 512, 1024, 2048]``.
        num_slices: slice-axis size ``D_i`` of the inputs: one int for every level
            (MP3D, no slice pooling: the backbone's ``num_slices``) or one per level
            (e.g. ``MP3DResNet.output_depths()`` with ``slice_pooling='isotropic'``).
        init_mode: initial weights: ``'mean'`` (``1 / D`` for every slice: the average
            of the slices, the default) or ``'center'`` (1 on the centre slice, 0
            elsewhere: starts as :class:`CenterSliceTransform`).
        init_cfg: mmengine init config; the ``init_mode`` weights are set in
            ``init_weights`` when it is ``None``.

    Parameters: level ``i`` is an ``nn.Conv2d(C_i * D_i, C_i, 1, groups=C_i,
    bias=False)`` (weight ``(C_i, D_i, 1, 1)``), ``sum_i C_i * D_i`` in all (34,560 for
    ``[256, 512, 1024, 2048]`` and 9 slices).

    Loading a state dict whose GTM weights were trained with another slice count
    resamples them linearly along the slice axis (:func:`resample_slice_weights`) and
    logs one WARNING per level; other shape mismatches are left to the loader, which
    reports them.

    Input: list/tuple of ``(B, C_i, D_i, H_i, W_i)`` float tensors (any memory format).
    Output: tuple of ``(B, C_i, H_i, W_i)`` tensors, contiguous NCHW.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_slices: Union[int, Sequence[int]] = 9,
                 init_mode: str = 'mean',
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        if not in_channels or any(int(c) < 1 for c in in_channels):
            raise ValueError(f'GroupTransform: in_channels must be positive ints, '
                             f'got {in_channels}')
        if isinstance(num_slices, int) and not isinstance(num_slices, bool):
            depths = [num_slices] * len(in_channels)
        else:
            depths = list(num_slices)
        if len(depths) != len(in_channels) or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f'GroupTransform: num_slices must be a positive int or one '
                             f'per level ({len(in_channels)}), got {num_slices!r}')
        if init_mode not in INIT_MODES:
            raise ValueError(f'GroupTransform: init_mode must be one of {INIT_MODES}, '
                             f'got {init_mode!r}')
        self.in_channels = in_channels
        self.num_slices = depths
        self.init_mode = init_mode
        self.convs = nn.ModuleList(
            nn.Conv2d(c * d, c, kernel_size=1, groups=c, bias=False)
            for c, d in zip(in_channels, depths))
        self.reset_slice_weights()

    def reset_slice_weights(self) -> None:
        """Set every level's weights to the ``init_mode`` pattern (see class doc)."""
        with torch.no_grad():
            for conv, d in zip(self.convs, self.num_slices):
                if self.init_mode == 'mean':
                    conv.weight.fill_(1.0 / d)
                else:
                    conv.weight.zero_()
                    conv.weight[:, d // 2] = 1.0

    def init_weights(self) -> None:
        """Apply ``init_cfg`` if given, else the ``init_mode`` pattern."""
        if self.init_cfg is None:
            self.reset_slice_weights()
        else:
            super().init_weights()

    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor, ...]]) -> Tuple[Tensor, ...]:
        """Fuse the slice axis of every level: (B, C_i, D_i, H, W) -> (B, C_i, H, W)."""
        if len(inputs) != len(self.convs):
            raise ValueError(f'GroupTransform: got {len(inputs)} levels, expected '
                             f'{len(self.convs)} (in_channels={self.in_channels})')
        outs = []
        for i, (x, conv, c, d) in enumerate(
                zip(inputs, self.convs, self.in_channels, self.num_slices)):
            if x.dim() != 5 or x.shape[1] != c or x.shape[2] != d:
                raise ValueError(
                    f'GroupTransform: level {i} expects (B, {c}, {d}, H, W) but got '
                    f'{tuple(x.shape)}; the backbone num_slices (and slice pooling) must '
                    f'match neck GroupTransform num_slices={self.num_slices}')
            b, _, _, h, w = x.shape
            outs.append(conv(x.reshape(b, c * d, h, w)))
        return tuple(outs)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        for i, (conv, d) in enumerate(zip(self.convs, self.num_slices)):
            key = f'{prefix}convs.{i}.weight'
            if key not in state_dict:
                continue
            w = state_dict[key]
            if (w.dim() == 4 and w.shape[0] == conv.weight.shape[0]
                    and w.shape[2:] == (1, 1) and w.shape[1] != d):
                print_log(
                    f'GroupTransform: {key} was trained with {w.shape[1]} slices '
                    f'{tuple(w.shape)}; resampled linearly along the slice axis to '
                    f'{d} slices {tuple(conv.weight.shape)}',
                    logger='current', level=logging.WARNING)
                state_dict[key] = resample_slice_weights(w, d)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

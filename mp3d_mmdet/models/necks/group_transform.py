"""Group transform module (GTM): 3D feature maps -> 2D maps for a 2D FPN.

Zhang et al., MICCAI 2020, section 2.1: a 3D map ``(C, D, H, W)`` is viewed as a 2D map
``(C*D, H, W)`` and a grouped ``1 x 1`` conv with ``C`` groups (each group = the ``D``
slices of one channel) fuses the slices into ``(C, H, W)``: per output channel ``c``,
``out[c] = sum_d w[c, d] * x[c, d]`` (no bias).
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from ...utils.validation import check_slice_depths

__all__ = ['GroupTransform', 'resample_slice_weights', 'gtm_weight_levels', 'adapt_gtm_weights']

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


def gtm_weight_levels(state_dict: Mapping[str, Tensor],
                      prefix: str = 'neck.0.') -> Dict[int, str]:
    """The GTM weight keys ``<prefix>convs.<i>.weight`` of a state dict, by level ``i``.

    ``prefix`` is the module's key prefix: ``'neck.0.'`` when the GTM is the first element
    of a detector's neck list (the configs' layout), ``''`` for the module's own state dict.
    """
    levels = {}
    for key in state_dict:
        if key.startswith(prefix + 'convs.') and key.endswith('.weight'):
            index = key[len(prefix + 'convs.'):-len('.weight')]
            if index.isdigit():
                levels[int(index)] = key
    return dict(sorted(levels.items()))


#: ``(key, old shape, new shape)`` of each GTM weight that :func:`adapt_gtm_weights` resampled.
ResampledWeight = Tuple[str, Tuple[int, ...], Tuple[int, ...]]


def adapt_gtm_weights(state_dict: Mapping[str, Tensor], num_slices: Union[int, Sequence[int]],
                      prefix: str = 'neck.0.', channels: Optional[Sequence[int]] = None
                      ) -> Tuple[Dict[str, Tensor], List[ResampledWeight]]:
    """Resample the GTM weights of a state dict to other slice counts: the one rule for
    moving GTM weights between slice counts (the module's loader, the checkpoint
    converters).

    Args:
        state_dict: a state dict holding GTM weights under ``prefix``.
        num_slices: the target slice-axis size ``D_i``: one int for every level or one per
            level.
        prefix: the GTM's key prefix (see :func:`gtm_weight_levels`).
        channels: the target ``C_i`` per level, if known: a weight with other channels is
            left alone.

    Returns:
        ``(new_state_dict, adapted)``: a shallow copy of ``state_dict`` in which every
        ``(C, D, 1, 1)`` weight of level ``i`` with ``D != D_i`` (and ``C == C_i``) is
        replaced by :func:`resample_slice_weights` of it, and ``(key, old shape, new shape)``
        of each replaced weight. Levels the state dict lacks, levels beyond the given
        ``D_i`` and weights of another layout are left for the loader to report.
    """
    levels = gtm_weight_levels(state_dict, prefix)
    num_levels = (max(levels, default=-1) + 1) if isinstance(num_slices, int) else len(
        num_slices)
    depths = check_slice_depths(num_slices, num_levels, owner='adapt_gtm_weights')
    out = OrderedDict(state_dict)
    adapted = []
    for level, key in levels.items():
        weight = state_dict[key]
        if level >= num_levels or (channels is not None and (
                level >= len(channels) or weight.shape[:1] != (channels[level], ))):
            continue
        depth = depths[level]
        if weight.dim() == 4 and weight.shape[2:] == (1, 1) and weight.shape[1] != depth:
            out[key] = resample_slice_weights(weight, depth)
            adapted.append((key, tuple(weight.shape), tuple(out[key].shape)))
    return out, adapted


@MODELS.register_module()
class GroupTransform(BaseModule):
    """GTM neck adapter: ``(B, C_i, D_i, H_i, W_i)`` -> ``(B, C_i, H_i, W_i)`` per level.

    Args:
        in_channels: channels ``C_i`` of every input level, e.g. ``[256, 512, 1024, 2048]``.
        num_slices: slice-axis size ``D_i`` of the inputs: one int for every level
            (MP3D, no slice pooling: the backbone's ``num_slices``) or one per level
            (e.g. ``MP3DResNet.output_depths()`` with ``slice_pooling='isotropic'``).
            Required; in a config it follows the backbone (:mod:`mp3d_mmdet.utils.config`).
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
                 num_slices: Optional[Union[int, Sequence[int]]] = None,
                 init_mode: str = 'mean',
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        in_channels = list(in_channels)
        if not in_channels or any(int(c) < 1 for c in in_channels):
            raise ValueError(f'GroupTransform: in_channels must be positive ints, '
                             f'got {in_channels}')
        depths = check_slice_depths(num_slices, len(in_channels), owner='GroupTransform')
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
        own = {k: v for k, v in state_dict.items() if k.startswith(prefix + 'convs.')}
        adapted_dict, adapted = adapt_gtm_weights(own, self.num_slices, prefix,
                                                  channels=self.in_channels)
        for key, old, new in adapted:
            print_log(f'GroupTransform: {key} was trained with {old[1]} slices {old}; '
                      f'resampled linearly along the slice axis to {new[1]} slices '
                      f'{new}', logger='current', level=logging.WARNING)
            state_dict[key] = adapted_dict[key]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

"""The "FPN + 3DCE" baseline backbone (3D context enhancement, Yan et al., MICCAI 2018).

The paper re-implements 3DCE with a ResNet-50 FPN (Table 1, "FPN+3DCE, 3/9/27 slices"):
the ``N`` input slices are cut into ``N / 3`` groups of 3 adjacent slices, every group is
a 3-channel image for one shared 2D ResNet-50, and at every FPN input level the group
features are concatenated on the channel axis and reduced back to the level's width by
a ``1 x 1`` conv. The outputs are ordinary 2D maps, so the neck is mmdet's plain FPN.
"""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from ...utils.validation import check_num_slices

__all__ = ['ResNet3DCE']

FUSION_INITS = ('center', 'kaiming')


@MODELS.register_module()
class ResNet3DCE(BaseModule):
    """Shared 2D ResNet over 3-slice groups with per-level 1x1 fusion (3DCE).

    Args:
        num_slices: number of input slices ``N`` (required): an odd multiple of
            ``slices_per_group`` (3, 9, 15, 21, 27, ...) so that the key slice
            ``N // 2`` is the centre of the centre group.
        slices_per_group: slices per group = input channels of the 2D ResNet (3).
        resnet: mmdet config of the shared 2D backbone; its ``in_channels`` is set to
            ``slices_per_group``. Default: ResNet-50, GN (32 groups), all four stages.
        fusion_init: initial ``1 x 1`` fusion weights: ``'center'`` (identity on the
            centre group, zero elsewhere: starts as the 2D network on the key slice's
            group) or ``'kaiming'`` (mmengine Kaiming normal, as a new random layer).
        init_cfg: mmengine init config of this module; give pretrained weights of the
            2D network in ``resnet['init_cfg']`` (e.g. ``torchvision://resnet50``).

    Input: ``(B, N, H, W)`` float, slices as channels. Output: tuple of
    ``(B, C_i, H_i, W_i)`` for the ResNet's ``out_indices`` (e.g. ``C_i`` = 256, 512,
    1024, 2048 at strides 4-32). Parameters: the 2D ResNet once plus
    ``sum_i (G * C_i * C_i + C_i)`` for the fusion convs (``G = N / 3`` groups).
    """

    def __init__(self,
                 num_slices: Optional[int] = None,
                 slices_per_group: int = 3,
                 resnet: Optional[Dict] = None,
                 fusion_init: str = 'center',
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg)
        if isinstance(slices_per_group, bool) or not isinstance(slices_per_group, int) \
                or slices_per_group < 1:
            raise ValueError(f'ResNet3DCE: slices_per_group must be a positive int, '
                             f'got {slices_per_group!r}')
        num_slices = check_num_slices(num_slices, owner='ResNet3DCE')
        if num_slices % slices_per_group:
            raise ValueError(f'ResNet3DCE: num_slices must be a multiple of '
                             f'slices_per_group={slices_per_group} (e.g. 3, 9, 27), '
                             f'got {num_slices!r}')
        if fusion_init not in FUSION_INITS:
            raise ValueError(f'ResNet3DCE: fusion_init must be one of {FUSION_INITS}, '
                             f'got {fusion_init!r}')
        if resnet is None:
            resnet = dict(
                type='ResNet',
                depth=50,
                out_indices=(0, 1, 2, 3),
                frozen_stages=-1,
                norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
                norm_eval=False,
                style='pytorch')
        resnet = copy.deepcopy(resnet)
        resnet['in_channels'] = slices_per_group
        self.num_slices = num_slices
        self.slices_per_group = slices_per_group
        self.num_groups = num_slices // slices_per_group
        self.fusion_init = fusion_init
        self.resnet = MODELS.build(resnet)
        widths = self._level_widths()
        self.fusion_convs = nn.ModuleList(
            nn.Conv2d(self.num_groups * c, c, kernel_size=1) for c in widths)
        self.out_channels = widths

    def _level_widths(self) -> List[int]:
        """Channels of each returned ResNet level (from its stage layout)."""
        r = self.resnet
        expansion = getattr(r.block, 'expansion', 1)
        return [r.base_channels * 2**i * expansion for i in r.out_indices]

    def init_weights(self) -> None:
        """Initialise the ResNet (its own ``init_cfg``) and the fusion convs."""
        super().init_weights()
        if self.init_cfg is not None:
            return
        with torch.no_grad():
            for conv, c in zip(self.fusion_convs, self.out_channels):
                conv.bias.zero_()
                if self.fusion_init == 'center':
                    conv.weight.zero_()
                    g = self.num_groups // 2
                    conv.weight[:, g * c:(g + 1) * c, 0, 0] = torch.eye(c)
                else:
                    nn.init.kaiming_normal_(conv.weight, mode='fan_out',
                                            nonlinearity='relu')

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, N, H, W) slices-as-channels -> tuple of fused (B, C_i, H_i, W_i)."""
        if x.dim() != 4 or x.shape[1] != self.num_slices:
            raise ValueError(f'ResNet3DCE was built with num_slices={self.num_slices}; '
                             f'expected input (B, {self.num_slices}, H, W), got '
                             f'{tuple(x.shape)}')
        b, n, h, w = x.shape
        feats = self.resnet(x.reshape(b * self.num_groups, self.slices_per_group, h, w))
        outs = []
        for f, conv in zip(feats, self.fusion_convs):
            _, c, fh, fw = f.shape
            outs.append(conv(f.reshape(b, self.num_groups * c, fh, fw)))
        return tuple(outs)

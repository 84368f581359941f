"""Residual bottlenecks of the MP3D / MR3D backbones: P3D-A, P3D-B, P3D-C and full 3D.

Every block maps a 3D feature map ``(B, C_in, D, H, W)`` to ``(B, 4 * planes, D, H', W')``
with ``H' = ceil(H / s)``, ``W' = ceil(W / s)`` for the spatial stride ``s``; the slice
axis ``D`` is never strided inside a block. The pseudo-3D pair replaces the ``3 x 3``
conv of a ResNet bottleneck by a spatial conv ``S`` (``1 x 3 x 3``) and a temporal
(inter-slice) conv ``T`` (``3 x 1 x 1``), each followed by its own norm layer and ReLU
(Qiu et al., ICCV 2017), wired as

* ``'A'`` serial:     ``y = T(S(x))``
* ``'B'`` parallel:   ``y = S(x) + T(x)``
* ``'C'`` serial + residual: ``s = S(x); y = s + T(s)``

where ``S(.)``/``T(.)`` include their norm and ReLU. ``'3d'`` uses one ``3 x 3 x 3`` conv
instead (the MR3D "modified ResNet-3D"). Bottleneck: ``1x1x1 -> pair -> 1x1x1`` with
expansion 4; the shortcut is a ``1 x 1 x 1`` conv with stride ``(1, s, s)`` plus norm
when the shape changes.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

__all__ = ['P3DBottleneck', 'PAIR_TYPES', 'STRIDE_STYLES']

PAIR_TYPES = ('A', 'B', 'C', '3d')
STRIDE_STYLES = ('caffe', 'pytorch')


class P3DBottleneck(BaseModule):
    """ResNet bottleneck whose middle conv is a P3D pair (A/B/C) or a 3x3x3 conv.

    Args:
        in_channels: channels of the input map ``C_in``.
        planes: width of the two inner convs; the output has ``4 * planes`` channels.
        pair_type: ``'A'``, ``'B'``, ``'C'`` (pseudo-3D pairs) or ``'3d'``.
        spatial_stride: ``s``, stride on H and W (the slice axis is never strided).
        style: where the spatial stride sits: ``'caffe'`` on the first ``1x1x1`` conv
            (as in the original P3D code; the MP3D model), ``'pytorch'`` on the
            ``3 x 3 (x 3)`` conv(s) (as in torchvision / MedicalNet ResNets; the MR3D
            model). With ``'pytorch'`` and a parallel ``'B'`` pair the T conv gets the
            stride too, so both branches have the same size.
        temporal_kernel: kernel size of T along the slice axis (odd), and the depth of
            the ``'3d'`` conv kernel.
        norm_cfg: mmcv norm config for 3D maps (``GN``, ``BN3d``, ``SyncBN`` ...).
        with_cp: gradient checkpointing of the whole block (saves memory, slower).
        init_cfg: mmengine init config.

    Shapes: input ``(B, C_in, D, H, W)``; output ``(B, 4*planes, D, H', W')``; float
    tensors of any dtype the convs accept.
    """

    expansion = 4

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 pair_type: str = 'A',
                 spatial_stride: int = 1,
                 style: str = 'caffe',
                 temporal_kernel: int = 3,
                 norm_cfg: Optional[Dict] = None,
                 with_cp: bool = False,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg)
        if pair_type not in PAIR_TYPES:
            raise ValueError(f'pair_type must be one of {PAIR_TYPES}, got {pair_type!r}')
        if style not in STRIDE_STYLES:
            raise ValueError(f'style must be one of {STRIDE_STYLES}, got {style!r}')
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f'temporal_kernel must be an odd int >= 1, got {temporal_kernel}')
        if norm_cfg is None:
            norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
        self.in_channels = in_channels
        self.planes = planes
        self.pair_type = pair_type
        self.spatial_stride = spatial_stride
        self.style = style
        self.with_cp = with_cp
        out_channels = planes * self.expansion
        s = spatial_stride
        stride1 = (1, s, s) if style == 'caffe' else (1, 1, 1)
        stride2 = (1, 1, 1) if style == 'caffe' else (1, s, s)
        kt = temporal_kernel

        self.conv1 = nn.Conv3d(in_channels, planes, 1, stride=stride1, bias=False)
        self.norm1 = build_norm_layer(norm_cfg, planes)[1]
        if pair_type == '3d':
            self.conv2 = nn.Conv3d(planes, planes, (kt, 3, 3), stride=stride2,
                                   padding=(kt // 2, 1, 1), bias=False)
            self.norm2 = build_norm_layer(norm_cfg, planes)[1]
        else:
            self.conv_s = nn.Conv3d(planes, planes, (1, 3, 3), stride=stride2,
                                    padding=(0, 1, 1), bias=False)
            self.norm_s = build_norm_layer(norm_cfg, planes)[1]
            # In B the T conv reads the pair input; it must stride when S does.
            t_stride = stride2 if pair_type == 'B' else (1, 1, 1)
            self.conv_t = nn.Conv3d(planes, planes, (kt, 1, 1), stride=t_stride,
                                    padding=(kt // 2, 0, 0), bias=False)
            self.norm_t = build_norm_layer(norm_cfg, planes)[1]
        self.conv3 = nn.Conv3d(planes, out_channels, 1, bias=False)
        self.norm3 = build_norm_layer(norm_cfg, out_channels)[1]
        if s != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(1, s, s), bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        else:
            self.downsample = None

    def _pair(self, x: Tensor) -> Tensor:
        """The middle of the bottleneck: (B, planes, D, H, W) -> (B, planes, D, H', W')."""
        if self.pair_type == '3d':
            return self.norm2(self.conv2(x)).relu_()
        s = self.norm_s(self.conv_s(x)).relu_()
        if self.pair_type == 'A':
            return self.norm_t(self.conv_t(s)).relu_()
        t = self.norm_t(self.conv_t(x if self.pair_type == 'B' else s)).relu_()
        # autograd keeps t for the ReLU backward: sum in place only without grad
        return s + t if torch.is_grad_enabled() else t.add_(s)

    def _inner_forward(self, x: Tensor) -> Tensor:
        out = self.norm1(self.conv1(x)).relu_()
        out = self._pair(out)
        out = self.norm3(self.conv3(out))
        if self.downsample is None:
            identity = x
        else:
            identity = self.downsample(x)
        out += identity
        return out.relu_()

    def forward(self, x: Tensor) -> Tensor:
        """Input (B, C_in, D, H, W) -> output (B, 4*planes, D, H', W')."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        return self._inner_forward(x)

"""MP3D ResNet (modified pseudo-3D ResNet) and its full-3D sibling MR3D.

Zhang et al., "Revisiting 3D Context Modeling with Supervised Pre-training for
Universal Lesion Detection in CT Slices", MICCAI 2020, section 2.1. The backbone reads
``N`` adjacent CT slices packed the mmdet way as ``N`` image channels and returns 3D
feature maps whose slice axis is never pooled (unless ``slice_pooling='isotropic'``).

Architecture (MP3D-63, ``depth=50``):

* stem: ``1 x 7 x 7`` conv, stride ``(1, 2, 2)``, 64 channels, norm, ReLU, then a
  ``3 x 3 x 3`` max-pool with stride ``(1, 2, 2)``;
* four stages of ``[3, 4, 6, 3]`` bottlenecks of widths 64/128/256/512 (x4 expansion),
  spatial stride ``(1, 2, 2)`` in the first block of stages 2-4 on the first ``1x1x1``
  conv (``style='caffe'``, as in the P3D code);
* the middle conv of block ``k`` (counted over the whole network from 0) is the P3D
  pair ``'ABC'[k % 3]`` (see :mod:`.p3d_blocks`);
* group normalisation (32 groups) after every conv.

MR3D ("modified ResNet-3D", the paper's full-3D comparison model) is the same class
with ``conv_type='3d'``: every ``3 x 3`` conv is ``3 x 3 x 3``, the stem is
``7 x 7 x 7`` and the spatial stride sits on the ``3 x 3 x 3`` conv
(``style='pytorch'``, as in MedicalNet's 3D ResNet). These choices reproduce the
paper's 64.03 M parameters and 415.81 GFLOPs for the MR3D FPN (see
``docs/model_complexity.md``); :class:`MR3DResNet` is a registered alias with those
defaults.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet.registry import MODELS
from .p3d_blocks import P3DBottleneck
from ...utils.slice_depths import SLICE_POOLINGS, slice_depths
from ...utils.validation import check_num_slices

__all__ = ['MP3DResNet', 'MR3DResNet']

CONV_TYPES = ('p3d', '3d')


def _max_pool3d(x: Tensor, kernel_size: Tuple[int, int, int], stride: Tuple[int, int, int],
                padding: Tuple[int, int, int]) -> Tensor:
    """``F.max_pool3d``; on CPU in ``channels_last_3d`` memory order, which torch's CPU
    max-pooling handles faster than NCDHW even with the layout copy (measured on the stem's
    map; ``tools/benchmark/backbone_speed.py`` times the whole backbone)."""
    if x.device.type == 'cpu':
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return F.max_pool3d(x, kernel_size, stride, padding)


@MODELS.register_module()
class MP3DResNet(BaseModule):
    """Modified pseudo-3D ResNet backbone (MP3D-63 for ``depth=50``) and MR3D.

    Args:
        depth: ResNet depth the stage layout follows: 50 ``[3, 4, 6, 3]``,
            101 ``[3, 4, 23, 3]``, 152 ``[3, 8, 36, 3]``.
        num_slices: number of input slices ``N`` (odd); the input must have
            exactly ``N`` channels. Required (configs set it at their top level: see
            :mod:`mp3d_mmdet.utils.config`). Must equal the neck adapter's ``num_slices``.
        conv_type: ``'p3d'`` (pseudo-3D pairs A/B/C, the MP3D model) or ``'3d'``
            (``3 x 3 x 3`` convs, the MR3D model).
        style: ``'caffe'`` (stride on the first ``1x1x1`` conv) or ``'pytorch'``
            (stride on the ``3 x 3`` conv). ``None``: ``'caffe'`` for ``'p3d'`` and
            ``'pytorch'`` for ``'3d'`` (the combinations that reproduce the paper's
            model sizes).
        stem_depth_kernel: slice-axis size of the stem conv kernel (odd). ``None``:
            1 for ``'p3d'``, 7 for ``'3d'``.
        slice_pooling: ``'none'`` (MP3D: the slice axis keeps ``N`` everywhere) or
            ``'isotropic'`` (original P3D: pool the slice axis too, see
            :func:`slice_depths`).
        stem_channels: stem width; ``None`` means ``base_channels``.
        base_channels: width of the first stage's inner convs (64 for MP3D-63).
        stage_blocks: override of the per-stage block counts of ``depth`` (e.g.
            ``(1, 1, 1, 1)`` for tiny test models); its length sets ``num_stages``.
        out_indices: stages whose outputs are returned (0-based); ``None``: all.
        temporal_kernel: slice-axis kernel size of the T convs / 3D convs.
        pair_cycle: P3D pair of global block ``k`` is ``pair_cycle[k % len]``;
            ``('A', 'B', 'C')`` as in P3D ResNet. Ignored for ``conv_type='3d'``.
        frozen_stages: freeze the stem (0) and stages ``1..frozen_stages``
            (parameters without grad, norms in eval mode); -1 freezes nothing.
        norm_cfg: mmcv norm config; ``GN`` (default, 32 groups), ``BN3d``, ``SyncBN``.
        norm_eval: keep BatchNorm layers in eval mode during training (no effect
            on GroupNorm).
        with_cp: gradient checkpointing per block.
        zero_init_residual: zero-initialise the last norm of every block (only when
            no ``init_cfg`` is given), as in mmdet's ResNet.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=...)``
            for an MP3D checkpoint of the same architecture, or
            ``dict(type='Inflated2DPretrained', checkpoint='torchvision://resnet50')``
            to inflate a 2D ResNet (see :mod:`mp3d_mmdet.converters.resnet2d_inflation`).

    Input: ``(B, N, H, W)`` float, ``N`` slices as channels (key slice at ``N // 2``).
    Output: tuple of ``(B, C_i, D_i, H_i, W_i)`` for ``i`` in ``out_indices`` with
    ``C_i = 4 * base_channels * 2**i``, ``H_i = H / 2**(i+2)`` (rounded up per stride)
    and ``D_i = N`` (``slice_pooling='none'``).

    Implementation: every conv is a plain ``nn.Conv3d`` (``1 x 3 x 3``, ``3 x 1 x 1``,
    ``1 x 1 x 1`` kernels for the pseudo-3D blocks); ReLU and the residual sum run in place.
    On CPU, call :func:`mp3d_mmdet.utils.retain_freed_cpu_memory` once per process: the
    activations are ``N`` times a 2D ResNet's and glibc would otherwise page-fault them
    afresh in every pass.
    """

    arch_settings = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

    def __init__(self,
                 depth: int = 50,
                 num_slices: Optional[int] = None,
                 conv_type: str = 'p3d',
                 style: Optional[str] = None,
                 stem_depth_kernel: Optional[int] = None,
                 slice_pooling: str = 'none',
                 stem_channels: Optional[int] = None,
                 base_channels: int = 64,
                 stage_blocks: Optional[Sequence[int]] = None,
                 out_indices: Optional[Sequence[int]] = (0, 1, 2, 3),
                 temporal_kernel: int = 3,
                 pair_cycle: Sequence[str] = ('A', 'B', 'C'),
                 frozen_stages: int = -1,
                 norm_cfg: Optional[Dict] = None,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise ValueError(f'depth must be one of {sorted(self.arch_settings)}, '
                             f'got {depth!r}')
        self.num_slices = check_num_slices(num_slices, owner=type(self).__name__)
        if conv_type not in CONV_TYPES:
            raise ValueError(f'conv_type must be one of {CONV_TYPES}, got {conv_type!r}')
        if slice_pooling not in SLICE_POOLINGS:
            raise ValueError(f'slice_pooling must be one of {SLICE_POOLINGS}, '
                             f'got {slice_pooling!r}')
        if style is None:
            style = 'caffe' if conv_type == 'p3d' else 'pytorch'
        if stem_depth_kernel is None:
            stem_depth_kernel = 1 if conv_type == 'p3d' else 7
        if stem_depth_kernel < 1 or stem_depth_kernel % 2 == 0:
            raise ValueError(f'stem_depth_kernel must be an odd int >= 1, '
                             f'got {stem_depth_kernel}')
        pair_cycle = tuple(pair_cycle)
        if not pair_cycle or any(p not in ('A', 'B', 'C') for p in pair_cycle):
            raise ValueError(f"pair_cycle must be a non-empty sequence of 'A'/'B'/'C', "
                             f'got {pair_cycle!r}')
        blocks = tuple(stage_blocks) if stage_blocks is not None \
            else self.arch_settings[depth]
        if not 1 <= len(blocks) <= 4 or any(int(n) < 1 for n in blocks):
            raise ValueError(f'stage_blocks must have 1-4 positive entries, got {blocks}')
        out_indices = tuple(range(len(blocks))) if out_indices is None \
            else tuple(out_indices)
        if not out_indices or any(not 0 <= i < len(blocks) for i in out_indices):
            raise ValueError(f'out_indices must be in [0, {len(blocks) - 1}], '
                             f'got {out_indices}')
        if norm_cfg is None:
            norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
        if norm_cfg.get('type') == 'BN':
            raise ValueError("norm_cfg type 'BN' is 2D; use 'BN3d' (or 'GN', 'SyncBN') "
                             'for the 3D feature maps of MP3DResNet')

        self.depth = depth
        self.conv_type = conv_type
        self.style = style
        self.stem_depth_kernel = stem_depth_kernel
        self.slice_pooling = slice_pooling
        self.stage_blocks = blocks
        self.num_stages = len(blocks)
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_cfg = norm_cfg
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        if init_cfg is None:
            self.init_cfg = [
                dict(type='Kaiming', layer='Conv3d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        stem_channels = base_channels if stem_channels is None else stem_channels
        iso = slice_pooling == 'isotropic'

        # stem
        kd = stem_depth_kernel
        self.conv1 = nn.Conv3d(1, stem_channels, (kd, 7, 7), stride=(1, 2, 2),
                               padding=(kd // 2, 3, 3), bias=False)
        self.norm1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.maxpool_stride = (2 if iso else 1, 2, 2)

        # stages
        self.res_layers = []
        in_channels, block_index = stem_channels, 0
        for i, num_blocks in enumerate(blocks):
            planes = base_channels * 2**i
            layer = []
            for j in range(num_blocks):
                pair = '3d' if conv_type == '3d' else pair_cycle[block_index % len(pair_cycle)]
                layer.append(
                    P3DBottleneck(
                        in_channels,
                        planes,
                        pair_type=pair,
                        spatial_stride=2 if (j == 0 and i > 0) else 1,
                        style=style,
                        temporal_kernel=temporal_kernel,
                        norm_cfg=norm_cfg,
                        with_cp=with_cp))
                in_channels = planes * P3DBottleneck.expansion
                block_index += 1
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*layer))
            self.res_layers.append(name)
        self.feat_dims = tuple(base_channels * 2**i * P3DBottleneck.expansion
                               for i in range(self.num_stages))
        self._freeze_stages()

    def init_weights(self) -> None:
        """Initialise as configured; zero-init the last norm of each block when no
        pretrained weights are loaded (``zero_init_residual``)."""
        super().init_weights()
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = any(
            isinstance(c, dict) and c.get('type') in ('Pretrained', 'Inflated2DPretrained')
            for c in cfgs)
        if self.zero_init_residual and not pretrained:
            for m in self.modules():
                if isinstance(m, P3DBottleneck):
                    nn.init.constant_(m.norm3.weight, 0)

    def output_depths(self) -> List[int]:
        """Slice-axis sizes of all stage outputs (see :func:`slice_depths`)."""
        return slice_depths(self.num_slices, self.slice_pooling, self.num_stages)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for m in (self.conv1, self.norm1):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            layer = getattr(self, f'layer{i}')
            layer.eval()
            for p in layer.parameters():
                p.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, N, H, W) slices-as-channels -> tuple of (B, C_i, D_i, H_i, W_i)."""
        if x.dim() != 4:
            raise ValueError(f'{type(self).__name__} expects (B, N, H, W) with N slices '
                             f'as channels, got shape {tuple(x.shape)}')
        if x.shape[1] != self.num_slices:
            raise ValueError(
                f'{type(self).__name__} was built with num_slices={self.num_slices} but '
                f'the input has {x.shape[1]} channels (slices); set the data pipeline '
                'slice count, backbone.num_slices and the neck adapter num_slices alike')
        b, n, h, w = x.shape
        x = x.reshape(b, 1, n, h, w)
        x = self.norm1(self.conv1(x)).relu_()
        x = _max_pool3d(x, (3, 3, 3), self.maxpool_stride, (1, 1, 1))
        outs = []
        for i, name in enumerate(self.res_layers):
            if i > 0 and self.slice_pooling == 'isotropic':
                x = _max_pool3d(x, (3, 1, 1), (2, 1, 1), (1, 0, 0))
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'MP3DResNet':
        """Set train/eval mode, keeping frozen stages and (if norm_eval) BN in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MODELS.register_module()
class MR3DResNet(MP3DResNet):
    """MR3D ("modified ResNet-3D") backbone: :class:`MP3DResNet` with ``conv_type='3d'``.

    Same arguments as :class:`MP3DResNet` except that ``conv_type`` is fixed to
    ``'3d'`` (defaults: ``style='pytorch'``, ``stem_depth_kernel=7``): every ``3 x 3``
    conv is ``3 x 3 x 3`` and the slice axis is not pooled. ``dict(type='MR3DResNet')``
    is exactly ``dict(type='MP3DResNet', conv_type='3d')``.
    """

    def __init__(self, **kwargs) -> None:
        if kwargs.get('conv_type', '3d') != '3d':
            raise ValueError(f"MR3DResNet has conv_type='3d', got {kwargs['conv_type']!r}")
        kwargs['conv_type'] = '3d'
        super().__init__(**kwargs)

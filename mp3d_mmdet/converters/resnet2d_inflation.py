"""Initialise MP3D / MR3D backbones from 2D ResNet checkpoints (2D -> 3D weight inflation).

2D -> 3D inflation (:func:`inflate_2d_state_dict`, or ``init_cfg=dict(type=
'Inflated2DPretrained', checkpoint=...)`` on the backbone) maps a 2D ResNet state dict
in torchvision or mmdet key layout (``conv1``, ``bn1``/``gn1``, ``layerI.J.convK``,
``layerI.J.bnK``/``gnK``, ``layerI.J.downsample.{0,1}``; an optional ``backbone.`` or
``module.`` prefix is stripped, ``fc.*`` is dropped) onto the 3D network so that it
starts out computing the 2D network slice by slice:

* stem ``7 x 7`` conv, 3 input channels -> 1: the RGB kernels are **summed** (a grey
  slice ``x`` replicated as ``(x, x, x)`` gives the same response), placed at the
  centre tap of the slice axis (MR3D ``7 x 7 x 7`` stem: other taps 0);
* ``1 x 1`` convs -> ``1 x 1 x 1`` convs; ``3 x 3`` -> P3D spatial ``1 x 3 x 3`` (copied);
* P3D temporal ``3 x 1 x 1`` convs: identity in depth (centre tap = identity matrix,
  other taps 0) with an identity norm after them (weight 1, bias 0; BN3d running mean
  0 and variance ``1 - eps``), so that T is the identity on its (non-negative) input:

  - P3D-A ``T(S(x))`` = ``S(x)``: exact;
  - P3D-C ``s + T(s)`` = ``2 s``: the following ``1 x 1 x 1`` conv is halved: exact;
  - P3D-B ``S(x) + T(x)``: T reads the pair *input*, so an identity T would add it.
    Instead its norm starts with weight 0 and bias ``b_branch_bias`` (> 0, default
    1e-3): the branch outputs the constant ``b_branch_bias`` (a ReLU at exactly 0 would
    pass no gradient, leaving the branch dead), whose effect through the next conv
    (``b_branch_bias * sum_k W3[:, k]``) is removed exactly from a BN3d running mean;
    with GroupNorm it stays as a ~1e-3 per-channel offset;
* MR3D ``3 x 3 x 3`` convs: ``depth_init='centre'`` puts the 2D kernel at the centre
  tap (exact), ``'mean'`` spreads ``W / k`` over the ``k`` taps (I3D inflation: exact
  only away from the first/last slices);
* norms: BN3d targets get weight, bias and running statistics; GroupNorm targets get
  weight and bias only (BN statistics have no GN counterpart; logged once).

Documented property (tested): with ``norm_cfg=dict(type='BN3d')`` in eval mode and a
2D ResNet of the same stride style (``'caffe'`` for MP3D, ``'pytorch'`` for MR3D), the
inflated network on a volume of ``N`` identical slices returns, at every slice, the 2D
network's features of that slice (replicated on 3 channels). A torchvision ResNet is
``'pytorch'`` style: inflated into MP3D (``'caffe'``), the first block of stages 2-4
strides its first conv instead of the ``3 x 3`` one (the usual caffe/pytorch
difference), so there the equivalence is approximate.

Shape mismatches raise ``ValueError`` listing every key with both shapes
(``strict_shapes=True``) or are logged one WARNING per key and left at their current
values; unused checkpoint keys and model keys left untouched are logged at WARNING.

"""
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import Tensor

from ..models.backbones.mp3d_resnet import MP3DResNet

__all__ = [
    'canonical_resnet2d_keys', 'inflate_2d_state_dict', 'Inflated2DPretrained'
]

_BLOCK_RE = re.compile(r'^layer(\d+)\.(\d+)\.(conv|bn|gn|norm)(\d)\.(\w+)$')
_DOWN_RE = re.compile(r'^layer(\d+)\.(\d+)\.downsample\.([01])\.(\w+)$')
_STEM_RE = re.compile(r'^(conv1|bn1|gn1|norm1)\.(\w+)$')
_NORM_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def _strip_prefix(state_dict: Mapping[str, Tensor],
                  prefix: Optional[str]) -> Dict[str, Tensor]:
    if prefix:
        out = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not out:
            raise ValueError(f'no key of the checkpoint starts with prefix {prefix!r}')
        return out
    out = dict(state_dict)
    for auto in ('module.', 'backbone.'):
        if any(k.startswith(auto + 'layer1.') for k in out):
            out = {k[len(auto):]: v for k, v in out.items() if k.startswith(auto)}
    return out


def canonical_resnet2d_keys(state_dict: Mapping[str, Tensor],
                            prefix: Optional[str] = None) -> Dict[str, Tensor]:
    """Map a 2D ResNet state dict (torchvision / mmdet layout) to canonical keys.

    Canonical keys: ``stem.conv.weight``, ``stem.norm.<p>``, ``layerI.J.convK.weight``,
    ``layerI.J.normK.<p>`` (K = 1..3), ``layerI.J.downsample.conv.weight``,
    ``layerI.J.downsample.norm.<p>`` (I 1-based stage, J 0-based block). ``fc.*`` is
    dropped; any other key raises ``ValueError`` (e.g. a deep-stem ResNet-V1c/V1d).
    """
    sd = _strip_prefix(state_dict, prefix)
    out: Dict[str, Tensor] = OrderedDict()
    unknown = []
    for k, v in sd.items():
        if k.startswith('fc.'):
            continue
        m = _STEM_RE.match(k)
        if m:
            out[f"stem.{'conv' if m.group(1) == 'conv1' else 'norm'}.{m.group(2)}"] = v
            continue
        m = _BLOCK_RE.match(k)
        if m:
            i, j, kind, n, p = m.groups()
            out[f"layer{i}.{j}.{'conv' if kind == 'conv' else 'norm'}{n}.{p}"] = v
            continue
        m = _DOWN_RE.match(k)
        if m:
            i, j, n, p = m.groups()
            out[f"layer{i}.{j}.downsample.{'conv' if n == '0' else 'norm'}.{p}"] = v
            continue
        unknown.append(k)
    if unknown:
        raise ValueError('not a plain 2D ResNet state dict (torchvision/mmdet layout); '
                         f'unrecognised keys: {unknown[:10]}'
                         f"{' ...' if len(unknown) > 10 else ''}")
    if 'stem.conv.weight' not in out:
        raise ValueError('2D ResNet state dict has no stem conv1.weight')
    return out


class _Inflater:
    """Collects target tensors, shape errors and provenance for one inflation."""

    def __init__(self, src: Dict[str, Tensor], target: Dict[str, Tensor]) -> None:
        self.src = src
        self.target = target
        self.out: Dict[str, Tensor] = {}
        self.used = set()
        self.errors: List[str] = []

    def get(self, key: str) -> Optional[Tensor]:
        if key in self.src:
            self.used.add(key)
            return self.src[key]
        return None

    def put(self, key: str, value: Tensor, source: str) -> None:
        want = self.target[key]
        if tuple(value.shape) != tuple(want.shape):
            self.errors.append(f'{key} <- {source}: inflated shape {tuple(value.shape)} '
                               f'!= model shape {tuple(want.shape)}')
            return
        self.out[key] = value.to(dtype=want.dtype).clone()

    def norm(self, dst: str, src: str) -> None:
        """Copy norm params present both in the checkpoint and the target."""
        for p in _NORM_KEYS:
            if f'{dst}.{p}' in self.target:
                v = self.get(f'{src}.{p}')
                if v is not None:
                    self.put(f'{dst}.{p}', v, f'{src}.{p}')
        for p in _NORM_KEYS:  # mark unusable statistics as seen (logged by caller)
            if f'{src}.{p}' in self.src:
                self.used.add(f'{src}.{p}')

    def identity_norm(self, dst: str, weight: float, bias: float,
                      norm: nn.Module) -> None:
        t = self.target
        self.out[f'{dst}.weight'] = torch.full_like(t[f'{dst}.weight'], weight)
        self.out[f'{dst}.bias'] = torch.full_like(t[f'{dst}.bias'], bias)
        if f'{dst}.running_mean' in t:
            self.out[f'{dst}.running_mean'] = torch.zeros_like(t[f'{dst}.running_mean'])
            self.out[f'{dst}.running_var'] = torch.full_like(t[f'{dst}.running_var'],
                                                             1.0 - norm.eps)


def _depth_kernel(w2d: Tensor, depth: int, mode: str) -> Tensor:
    """(O, I, kh, kw) -> (O, I, depth, kh, kw): centre tap or I3D mean inflation."""
    if mode == 'mean':
        return w2d.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth
    w = w2d.new_zeros(w2d.shape[:2] + (depth, ) + w2d.shape[2:])
    w[:, :, depth // 2] = w2d
    return w


def inflate_2d_state_dict(state_dict_2d: Mapping[str, Tensor],
                          model: nn.Module,
                          prefix: Optional[str] = None,
                          depth_init: str = 'centre',
                          b_branch_bias: float = 1e-3,
                          strict_shapes: bool = True) -> Dict[str, Tensor]:
    """Inflate a 2D ResNet state dict into a state dict for ``model`` (an MP3DResNet).

    Args:
        state_dict_2d: 2D ResNet weights (torchvision or mmdet key layout).
        model: the target :class:`~mp3d_mmdet.models.backbones.MP3DResNet` (its
            blocks give the P3D pair types, norm types and shapes).
        prefix: keep only checkpoint keys with this prefix and strip it (``None``:
            strip a leading ``backbone.`` / ``module.`` automatically).
        depth_init: MR3D ``3 x 3 x 3`` / stem inflation, ``'centre'`` or ``'mean'``.
        b_branch_bias: initial output (> 0) of the P3D-B temporal branch.
        strict_shapes: raise on any shape mismatch (else log each and skip it).

    Returns:
        A complete state dict for ``model`` (keys not covered by the checkpoint keep the
        model's current values; they are logged at WARNING).
    """
    if not isinstance(model, MP3DResNet):
        raise TypeError(f'model must be an MP3DResNet, got {type(model).__name__}')
    if depth_init not in ('centre', 'mean'):
        raise ValueError(f"depth_init must be 'centre' or 'mean', got {depth_init!r}")
    if not b_branch_bias > 0:
        raise ValueError(f'b_branch_bias must be > 0, got {b_branch_bias}')
    src = canonical_resnet2d_keys(state_dict_2d, prefix)
    target = {k: v.detach() for k, v in model.state_dict().items()}
    inf = _Inflater(src, target)

    stem = inf.get('stem.conv.weight')
    stem = stem.sum(dim=1, keepdim=True)  # RGB -> 1 channel (sum of kernels)
    inf.put('conv1.weight', _depth_kernel(stem, model.conv1.kernel_size[0], depth_init),
            'conv1.weight (RGB kernels summed)')
    inf.norm('norm1', 'stem.norm')

    gn_targets = False
    halved_c = []
    for i, name in enumerate(model.res_layers):
        for j, blk in enumerate(getattr(model, name)):
            p, s = f'{name}.{j}', f'layer{i + 1}.{j}'
            gn_targets |= isinstance(blk.norm1, nn.GroupNorm)
            w1, w2, w3 = (inf.get(f'{s}.conv{k}.weight') for k in (1, 2, 3))
            if w1 is None or w2 is None or w3 is None:
                continue  # block absent from the checkpoint: logged below
            inf.put(f'{p}.conv1.weight', w1[:, :, None], f'{s}.conv1.weight')
            inf.norm(f'{p}.norm1', f'{s}.norm1')
            if blk.pair_type == '3d':
                kt = blk.conv2.kernel_size[0]
                inf.put(f'{p}.conv2.weight', _depth_kernel(w2, kt, depth_init),
                        f'{s}.conv2.weight')
                inf.norm(f'{p}.norm2', f'{s}.norm2')
            else:
                inf.put(f'{p}.conv_s.weight', w2[:, :, None], f'{s}.conv2.weight')
                inf.norm(f'{p}.norm_s', f'{s}.norm2')
                ct = blk.conv_t
                eye = torch.nn.init.dirac_(torch.empty(ct.weight.shape, dtype=w2.dtype))
                inf.put(f'{p}.conv_t.weight', eye, 'identity in depth')
                if blk.pair_type == 'B':
                    inf.identity_norm(f'{p}.norm_t', 0.0, b_branch_bias, blk.norm_t)
                else:
                    inf.identity_norm(f'{p}.norm_t', 1.0, 0.0, blk.norm_t)
            w3_3d = w3[:, :, None]
            if blk.pair_type == 'C':
                w3_3d = w3_3d * 0.5  # the pair outputs 2 s: halve the next conv
                halved_c.append(p)
            inf.put(f'{p}.conv3.weight', w3_3d, f'{s}.conv3.weight')
            inf.norm(f'{p}.norm3', f'{s}.norm3')
            if blk.pair_type == 'B' and f'{p}.norm3.running_mean' in inf.out:
                # constant branch output b -> conv3 adds b * sum_k W3[:, k]
                offset = b_branch_bias * w3.sum(dim=(1, 2, 3))
                inf.out[f'{p}.norm3.running_mean'] = inf.out[f'{p}.norm3.running_mean'] \
                    + offset.to(inf.out[f'{p}.norm3.running_mean'].dtype)
            if blk.downsample is not None:
                wd = inf.get(f'{s}.downsample.conv.weight')
                if wd is not None:
                    inf.put(f'{p}.downsample.0.weight', wd[:, :, None],
                            f'{s}.downsample.0.weight')
                    inf.norm(f'{p}.downsample.1', f'{s}.downsample.norm')

    if inf.errors:
        msg = 'inflate_2d_state_dict: shape mismatches:\n  ' + '\n  '.join(inf.errors)
        if strict_shapes:
            raise ValueError(msg)
        for e in inf.errors:
            print_log(f'inflate_2d_state_dict: skipped {e}', logger='current',
                      level=logging.WARNING)
    unused = sorted(set(src) - inf.used)
    if unused:
        print_log(f'inflate_2d_state_dict: {len(unused)} checkpoint keys unused: '
                  f'{unused}', logger='current', level=logging.WARNING)
    untouched = sorted(k for k in target if k not in inf.out
                       and not k.endswith('num_batches_tracked'))
    if untouched:
        print_log(f'inflate_2d_state_dict: {len(untouched)} model keys not in the 2D '
                  f'checkpoint keep their current values: {untouched}',
                  logger='current', level=logging.WARNING)
    if gn_targets:
        print_log('inflate_2d_state_dict: GroupNorm layers took the 2D norms\' weight and '
                  'bias only (BatchNorm running statistics have no GN counterpart); the '
                  'inflated network approximates the 2D one', logger='current',
                  level=logging.INFO)
    if halved_c:
        print_log(f'inflate_2d_state_dict: conv3 halved in the {len(halved_c)} P3D-C '
                  'blocks (identity T doubles the pair output)', logger='current',
                  level=logging.INFO)
    full = OrderedDict((k, inf.out.get(k, v)) for k, v in target.items())
    return full


@WEIGHT_INITIALIZERS.register_module()
class Inflated2DPretrained:
    """mmengine initializer: inflate a 2D ResNet checkpoint into an MP3D/MR3D backbone.

    Use as the backbone's ``init_cfg``, e.g.
    ``init_cfg=dict(type='Inflated2DPretrained', checkpoint='torchvision://resnet50')``.

    Args:
        checkpoint: path or URL (``torchvision://``, ``open-mmlab://``, http, local file).
        prefix: key prefix to select and strip (e.g. ``'backbone.'`` for an mmdet
            detector checkpoint; default: strip ``backbone.``/``module.`` automatically).
        map_location: passed to the checkpoint loader.
        depth_init, b_branch_bias, strict_shapes: see :func:`inflate_2d_state_dict`.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: str = 'cpu', depth_init: str = 'centre',
                 b_branch_bias: float = 1e-3, strict_shapes: bool = True) -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location
        self.depth_init = depth_init
        self.b_branch_bias = b_branch_bias
        self.strict_shapes = strict_shapes

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint
        print_log(f'inflate 2D ResNet weights from: {self.checkpoint}', logger='current')
        ckpt = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        full = inflate_2d_state_dict(sd, module, prefix=self.prefix,
                                     depth_init=self.depth_init,
                                     b_branch_bias=self.b_branch_bias,
                                     strict_shapes=self.strict_shapes)
        module.load_state_dict(full, strict=True)
        if hasattr(module, '_params_init_info'):
            from mmengine.model.weight_init import update_init_info
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: inflated from {self.checkpoint}'

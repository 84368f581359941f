"""Activation memory of the backbones: the bytes autograd keeps for the backward pass.

One training-mode forward of each backbone on one input, counting every tensor autograd
saves for the backward pass (``torch.autograd.graph.saved_tensors_hooks``; each storage
once; parameters and the input left out). The models run on the ``meta`` device: shapes and
dtypes only, so full-size inputs cost nothing and the count is exact and the same on every
machine. On a GPU the peak memory of a training step is about this plus the weights, their
gradients, the optimizer state and cuDNN's workspace.

``--precision amp`` counts what CUDA's float16 autocast saves, applying its rules by hand
(autocast itself does not act on meta tensors): every conv casts its input and weight to 16
bits and returns 16 bits; GroupNorm (CUDA autocast's float32 list) casts its input to float32
and returns float32; everything else keeps the dtype it gets. ``--precision fp32`` counts
plain float32 training.

Examples::

    python tools/benchmark/activation_memory.py                        # batch 2, 9 x 512 x 512
    python tools/benchmark/activation_memory.py --batch-size 1 --variants default half-norm

Variants (see ``backbone_speed.py``'s ``VARIANTS``): ``half-norm`` keeps GroupNorm in 16 bits
with float32 statistics, ``with-cp`` checkpoints every residual block (only the block inputs
are kept; the blocks are recomputed in the backward pass).
"""
import argparse
import contextlib
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import backbone_speed  # noqa: E402

#: Variants this count supports (the others change speed, not what is saved).
VARIANTS = ('default', 'half-norm', 'with-cp')
#: The 16-bit type of CUDA autocast (the emulated mixed precision).
HALF = torch.float16


class HalfConv(nn.Module):
    """A conv as CUDA autocast runs it: input and weight cast to 16 bits, 16-bit output."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        bias = None if conv.bias is None else conv.bias.to(HALF)
        return conv._conv_forward(x.to(HALF), conv.weight.to(HALF), bias)


class Float32GroupNorm(nn.Module):
    """``nn.GroupNorm`` as CUDA autocast runs it: input cast to float32, float32 output."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        return F.group_norm(x.float(), norm.num_groups, norm.weight, norm.bias, norm.eps)


class HalfGroupNorm(nn.Module):
    """``nn.GroupNorm`` on a 16-bit input in 16 bits (the ``half-norm`` variant)."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return backbone_speed.half_group_norm(self.norm, x)


def emulate_amp(model: nn.Module, half_norm: bool = False) -> nn.Module:
    """Wrap every conv and GroupNorm of ``model`` (in place) so that a float32 forward
    follows CUDA autocast's dtype rules (module docstring); ``half_norm``: GroupNorm in 16
    bits instead."""
    backbone_speed.replace_modules(model, lambda m: isinstance(m, (nn.Conv2d, nn.Conv3d)),
                                   HalfConv)
    backbone_speed.replace_modules(model, lambda m: isinstance(m, nn.GroupNorm),
                                   HalfGroupNorm if half_norm else Float32GroupNorm)
    return model


def _storage_key(t: torch.Tensor) -> int:
    """One key per storage, on any device (meta storages have no data pointer)."""
    return t.untyped_storage()._cdata


@contextlib.contextmanager
def count_saved(exclude: Sequence[torch.Tensor]) -> Iterator[Dict[str, int]]:
    """Count the bytes of the storages autograd saves inside the block, per dtype.

    Args:
        exclude: tensors whose storages are not counted (parameters, the input).

    Yields:
        dict: dtype name -> bytes, filled when the block ends.
    """
    skip = {_storage_key(t) for t in exclude}
    storages: Dict[int, tuple] = {}
    keep: List[torch.Tensor] = []  # alive until counted, so that no key is reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in skip and t.untyped_storage().nbytes() > 0:
            storages[key] = (str(t.dtype).replace('torch.', ''), t.untyped_storage().nbytes())
            keep.append(t)
        return t

    counts: Dict[str, int] = defaultdict(int)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counts
    for dtype, nbytes in storages.values():
        counts[dtype] += nbytes


def saved_bytes(model: nn.Module, x: torch.Tensor) -> Dict[str, int]:
    """Bytes saved for the backward pass by one training forward of ``model`` on ``x``.

    Args:
        model: the backbone (put in training mode here); wrapped by :func:`emulate_amp`
            for mixed precision.
        x: its input, ``(B, N, H, W)`` or ``(B, 3, H, W)``, on the model's device.

    Returns:
        dict: dtype name -> bytes, and ``'total'``.
    """
    model.train()
    with count_saved(list(model.parameters()) + [x]) as counts:
        outs = model(x)
        del outs
    result = dict(counts)
    result['total'] = sum(counts.values())
    return result


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--num-slices', type=int, default=9)
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=(512, 512))
    p.add_argument('--precision', choices=('amp', 'fp32'), default='amp')
    p.add_argument('--models', nargs='+', default=['mp3d', 'mr3d', '3dce', 'resnet50'],
                   choices=['mp3d', 'mr3d', '3dce', 'resnet50'])
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    p.add_argument('--json', default=None, metavar='FILE', help='also write the table here')
    args = p.parse_args(argv)
    if args.batch_size < 1 or min(args.shape) < 32:
        p.error('--batch-size must be >= 1 and --shape >= 32 32')
    # backbone_speed's model table reads these
    args.norm = 'gn'
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import mp3d_mmdet  # noqa: F401  (registers the models)
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    b, n, (h, w) = args.batch_size, args.num_slices, args.shape
    print(f'bytes saved for backward, one training forward, precision {args.precision}; '
          f'3D models and 3DCE ({b}, {n}, {h}, {w}), ResNet-50 ({b}, 3, {h}, {w})')
    rows: List[Dict] = []
    print('| model | variant | saved GiB | of which float32 GiB | vs MR3D, same variant |')
    print('| --- | --- | --- | --- | --- |')
    for variant in args.variants:
        models = backbone_speed.build_models(args, with_cp=variant == 'with-cp')
        totals = {}
        for name, (builder, shape) in models.items():
            with torch.device('meta'):
                model = builder()
                x = torch.empty(shape)
            if args.precision == 'amp':
                emulate_amp(model, half_norm=variant == 'half-norm')
            if variant == 'with-cp':
                x.requires_grad_()  # blocks checkpoint only when their input needs grad
            counts = saved_bytes(model, x)
            totals[name] = counts['total']
            rows.append(dict(model=name, variant=variant, **counts))
            del model
        for name, total in totals.items():
            fp32 = next(r for r in rows if r['model'] == name and r['variant'] == variant
                        ).get('float32', 0)
            rel = f"{total / totals['mr3d']:.2f}x" if 'mr3d' in totals else '-'
            print(f'| {name} | {variant} | {total / 2**30:.2f} | {fp32 / 2**30:.2f} | {rel} |',
                  flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(batch_size=b, num_slices=n, shape=[h, w],
                           precision=args.precision, rows=rows), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

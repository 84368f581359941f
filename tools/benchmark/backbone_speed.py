"""Backbone speed: MP3D-63 vs MR3D vs FPN+3DCE vs mmdet's 2D ResNet-50, side by side.

Times the forward pass (and with ``--backward`` forward + backward) of each backbone on
one input at ``--shape`` (default 512 x 512): the 3D models and 3DCE on ``N`` slices
(default 9), ResNet-50 on one 3-channel image. The models run interleaved, round by
round, and the best (minimum) and median round are reported, so that load from other
processes affects all of them alike. Every model's multiply-accumulates (GMACs, the
paper's "GFLOPs" convention, see ``mp3d_mmdet/utils/op_counter.py``) are counted
on meta tensors, and the time per GMAC is reported relative to ResNet-50's. On CUDA the
peak memory (``torch.cuda.max_memory_allocated``) of every model is printed too.

Examples::

    python tools/benchmark/backbone_speed.py                     # CPU, 512 x 512
    python tools/benchmark/backbone_speed.py --quick             # CPU, 256 x 256
    python tools/benchmark/backbone_speed.py --device cuda --amp --backward

``--malloc retain`` (default on CPU) keeps freed memory in the process (see
``mp3d_mmdet.utils.cpu_memory``) for all models alike; ``--malloc default``
leaves glibc as it is (large activations are then page-faulted every pass).

``--variants`` times the same models again under other execution settings (one table
each; ``VARIANTS`` below says what each one changes), to measure a change before it is made
in the models; ``--json FILE`` writes every table's numbers. ``tools/benchmark/gpu_check.sh``
runs both on a GPU.
"""
import argparse
import contextlib
import json
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mp3d_mmdet.utils.op_counter import count_macs


#: Execution settings timed by ``--variants``: name -> what changes against ``default``.
VARIANTS = {
    'default': 'NCDHW tensors; on CUDA cuDNN picks its algorithms by timing them '
               '(torch.backends.cudnn.benchmark)',
    'no-cudnn-benchmark': "cuDNN's heuristic algorithm choice (mmdet's env_cfg default)",
    'channels-last': 'weights and input in channels_last_3d (3D models) / channels_last',
    'fold-spatial': 'channels-last, and every 1 x k x k conv computed as a 2D conv over the '
                    '(B * D) slices (a view in that layout, no copy)',
    'half-norm': 'under AMP, GroupNorm in float16 with float32 statistics instead of '
                 "autocast's float32 GroupNorm",
    'with-cp': 'gradient checkpointing of every residual block (with_cp=True)',
    'compile': 'torch.compile of the whole backbone',
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--amp', action='store_true',
                   help='autocast to float16 (CUDA only)')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=None,
                   help='input size (default 512 512; 256 256 with --quick)')
    p.add_argument('--num-slices', type=int, default=9)
    p.add_argument('--batch-size', type=int, default=1,
                   help='samples per pass (volumes of N slices; images for ResNet-50)')
    p.add_argument('--variants', nargs='+', default=['default'], choices=sorted(VARIANTS),
                   help='execution settings to time, one table each (see VARIANTS)')
    p.add_argument('--json', default=None, metavar='FILE',
                   help='also write every table (times, GMACs, peak memory) to FILE')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed rounds per model (default 3; 2 with --quick)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed rounds first (default 1 on CPU, 3 on CUDA)')
    p.add_argument('--backward', action='store_true',
                   help='also time forward + backward (train mode)')
    p.add_argument('--quick', action='store_true', help='256 x 256, 2 rounds')
    p.add_argument('--models', nargs='+', default=['mp3d', 'mr3d', '3dce', 'resnet50'],
                   choices=['mp3d', 'mr3d', '3dce', 'resnet50', 'resnet50-cl'])
    p.add_argument('--norm', choices=('gn', 'bn'), default='gn',
                   help="norm layers of every model: GN 32 groups (the paper's) or BN")
    p.add_argument('--malloc', choices=('retain', 'default'), default='retain',
                   help='CPU only: keep freed memory in the process (retain) or not')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    args = p.parse_args(argv)
    if args.amp and args.device != 'cuda':
        p.error('--amp needs --device cuda (float16 autocast)')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda but torch.cuda.is_available() is False')
    if args.shape is None:
        args.shape = (256, 256) if args.quick else (512, 512)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.warmup is None:
        args.warmup = 3 if args.device == 'cuda' else 1
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        p.error('--repeats and --batch-size must be >= 1 and --warmup >= 0')
    if args.json and osp.isdir(args.json):
        p.error(f'--json {args.json} is a folder')
    return args


def norm_cfg(kind: str, dims: int) -> Dict:
    if kind == 'gn':
        return dict(type='GN', num_groups=32, requires_grad=True)
    return dict(type='BN3d' if dims == 3 else 'BN', requires_grad=True)


def build_models(args, with_cp: bool = False
                 ) -> Dict[str, Tuple[Callable[[], nn.Module], Tuple[int, ...]]]:
    """name -> (builder, input shape ``(B, N, H, W)`` or ``(B, 3, H, W)``)."""
    from mmdet.registry import MODELS
    n, b, (h, w) = args.num_slices, args.batch_size, args.shape
    r50 = dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3), frozen_stages=-1,
               norm_cfg=norm_cfg(args.norm, 2), norm_eval=False, style='pytorch',
               with_cp=with_cp)
    table = {
        'mp3d': (lambda: MODELS.build(dict(type='MP3DResNet', num_slices=n, with_cp=with_cp,
                                           norm_cfg=norm_cfg(args.norm, 3))), (b, n, h, w)),
        'mr3d': (lambda: MODELS.build(dict(type='MR3DResNet', num_slices=n, with_cp=with_cp,
                                           norm_cfg=norm_cfg(args.norm, 3))), (b, n, h, w)),
        '3dce': (lambda: MODELS.build(dict(type='ResNet3DCE', num_slices=n, resnet=r50)),
                 (b, n, h, w)),
        'resnet50': (lambda: MODELS.build(r50), (b, 3, h, w)),
        'resnet50-cl': (lambda: to_channels_last(MODELS.build(r50)), (b, 3, h, w)),
    }
    return {k: table[k] for k in args.models}


def count_gmacs(builder: Callable[[], nn.Module], shape: Tuple[int, ...]) -> float:
    """GMACs of one forward, every conv counted as a dense conv (paper convention)."""
    with torch.device('meta'):
        model = builder()
    model.eval()
    return count_macs(model, torch.zeros(shape, device='meta')) / 1e9


def to_channels_last(model: nn.Module) -> nn.Module:
    """Every 5D weight in ``channels_last_3d`` and every 4D weight in ``channels_last``
    memory order (in place); convs then produce outputs in that order too."""
    for param in model.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
        elif param.dim() == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)
    return model


class SpatialConvAs2d(nn.Module):
    """A ``1 x kh x kw`` ``nn.Conv3d`` computed as a 2D conv over the ``B * D`` slices.

    Input ``(B, C, D, H, W)`` -> output ``(B, C_out, D, H', W')``, the same values as the
    wrapped conv (same weight). In ``channels_last_3d`` memory order the fold to
    ``(B * D, C, H, W)`` and back is a view; in NCDHW it copies.
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        assert conv.kernel_size[0] == 1 and conv.stride[0] == 1 and conv.padding[0] == 0
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        conv = self.conv
        y = F.conv2d(x.transpose(1, 2).reshape(b * d, c, h, w), conv.weight.squeeze(2),
                     conv.bias, conv.stride[1:], conv.padding[1:], conv.dilation[1:],
                     conv.groups)
        return y.reshape(b, d, *y.shape[1:]).transpose(1, 2)


def half_group_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm`` applied to a 16-bit ``x`` in its own dtype (torch's kernel accumulates the
    statistics in float32); ``(B, C, ...)`` in, same shape and dtype out."""
    return F.group_norm(x, norm.num_groups, norm.weight.to(x.dtype), norm.bias.to(x.dtype),
                        norm.eps)


class HalfGroupNorm(nn.Module):
    """``nn.GroupNorm`` that, under autocast, normalises a 16-bit input in 16 bits
    (statistics accumulated in float32 by torch's kernel) instead of CUDA autocast's float32
    GroupNorm."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.norm
        if x.dtype not in (torch.float16, torch.bfloat16) or not torch.is_autocast_enabled(
                x.device.type):
            return norm(x)
        with torch.autocast(x.device.type, enabled=False):
            return half_group_norm(norm, x)


def replace_modules(model: nn.Module, match: Callable[[nn.Module], bool],
                    wrap: Callable[[nn.Module], nn.Module]) -> int:
    """Replace every submodule for which ``match`` holds by ``wrap(submodule)``; returns
    how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if match(child):
                setattr(parent, name, wrap(child))
                count += 1
    return count


def apply_variant(variant: str, model: nn.Module, x: torch.Tensor
                  ) -> Tuple[nn.Module, torch.Tensor]:
    """The model and input of ``variant`` (see ``VARIANTS``; ``with-cp`` is set when the
    model is built, the cuDNN switch around the timing)."""
    if variant in ('channels-last', 'fold-spatial'):
        model = to_channels_last(model)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
    if variant == 'fold-spatial':
        replace_modules(model, lambda m: isinstance(m, nn.Conv3d) and m.kernel_size[0] == 1
                        and m.kernel_size[1:] != (1, 1) and m.stride[0] == 1,
                        SpatialConvAs2d)
    if variant == 'half-norm':
        replace_modules(model, lambda m: isinstance(m, nn.GroupNorm), HalfGroupNorm)
    if variant == 'compile':
        model = torch.compile(model)
    return model, x


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark = enabled`` inside the block."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


class Runner:
    """One model's timed step (forward, or forward + backward)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, backward: bool, amp: bool):
        self.model, self.x, self.backward, self.amp = model, x, backward, amp
        self.model.train(backward)
        self.device = x.device

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()

    def step(self) -> float:
        self.sync()
        t0 = time.perf_counter()
        with torch.autocast('cuda', dtype=torch.float16, enabled=self.amp):
            if self.backward:
                outs = self.model(self.x)
                loss = sum(o.float().mean() for o in outs)
            else:
                with torch.no_grad():
                    outs = self.model(self.x)
        if self.backward:
            loss.backward()
            for p in self.model.parameters():
                p.grad = None
        del outs
        self.sync()
        return time.perf_counter() - t0


def time_models(args, models, mode_backward: bool, variant: str = 'default'
                ) -> Dict[str, Dict]:
    """Interleaved rounds over all models under ``variant``; returns per-model timing
    stats (``times`` in seconds, ``peak_mb`` on CUDA)."""
    device = torch.device(args.device)
    runners, stats = {}, {}
    for name, (builder, shape) in models.items():
        model = builder()  # default torch init: timing does not depend on the values
        model.to(device)
        x = torch.randn(shape, device=device)
        if name == 'resnet50-cl':
            x = x.contiguous(memory_format=torch.channels_last)
        model, x = apply_variant(variant, model, x)
        runners[name] = Runner(model, x, mode_backward, args.amp)
        stats[name] = dict(times=[], peak_mb=None)
    # warm-up, with peak memory measured per model on CUDA
    for name, r in runners.items():
        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(max(args.warmup, 1 if device.type == 'cuda' else 0)):
            r.step()
        if device.type == 'cuda':
            stats[name]['peak_mb'] = torch.cuda.max_memory_allocated() / 2**20
    for i in range(args.repeats):
        for name, r in runners.items():
            stats[name]['times'].append(r.step())
        print(f'  round {i + 1}/{args.repeats}: ' + ', '.join(
            f'{n} {s["times"][-1] * 1e3:.0f} ms' for n, s in stats.items()), flush=True)
    for r in runners.values():
        del r.model
    return stats


def print_table(title: str, stats, gmacs: Dict[str, float], ref: str) -> None:
    print(f'\n{title}')
    ref_best = min(stats[ref]['times']) / gmacs[ref] if ref in stats else None
    head = ('| model | GMACs | best ms | median ms | ms / GMAC | per GMAC vs '
            f'{ref} | peak MiB |')
    print(head)
    print('|' + '---|' * 7)
    for name, s in stats.items():
        best, med = min(s['times']) * 1e3, statistics.median(s['times']) * 1e3
        per = best / gmacs[name]
        rel = f'{per / (ref_best * 1e3):.2f}x' if ref_best else 'n/a'
        peak = f'{s["peak_mb"]:.0f}' if s['peak_mb'] is not None else '-'
        print(f'| {name} | {gmacs[name]:.2f} | {best:.0f} | {med:.0f} | {per:.2f} | '
              f'{rel} | {peak} |')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import mp3d_mmdet  # noqa: F401  (registers the models)
    from mmdet.utils import register_all_modules
    from mp3d_mmdet.utils import retain_freed_cpu_memory
    register_all_modules(init_default_scope=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc = 'n/a (CUDA caching allocator)'
    if args.device == 'cpu':
        malloc = 'default glibc'
        if args.malloc == 'retain':
            malloc = 'retain freed memory' if retain_freed_cpu_memory() \
                else 'default glibc (retain not available)'
    if args.device == 'cuda':
        dev_name = torch.cuda.get_device_name()
    else:
        dev_name = f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__}; device: {dev_name}; amp: {args.amp}; malloc: '
          f'{malloc}; norm: {args.norm}')
    torch.manual_seed(0)
    models = build_models(args)
    gmacs = {k: count_gmacs(b, s) for k, (b, s) in models.items()}
    b, n, (h, w) = args.batch_size, args.num_slices, args.shape
    print(f'inputs: 3D models and 3DCE ({b}, {n}, {h}, {w}); ResNet-50 ({b}, 3, {h}, {w}); '
          f'{args.warmup} warm-up + {args.repeats} timed rounds')
    ref = 'resnet50' if 'resnet50' in models else next(iter(models))
    modes = [False, True] if args.backward else [False]
    tables: List[Dict] = []
    for variant in args.variants:
        if variant != 'default':
            print(f'\n=== variant {variant}: {VARIANTS[variant]}')
        variant_models = build_models(args, with_cp=True) if variant == 'with-cp' else models
        for backward in modes:
            label = ('forward + backward (train mode)' if backward
                     else 'forward (eval, no grad)')
            print(f'\n== {label}')
            with cudnn_benchmark(args.device == 'cuda' and variant != 'no-cudnn-benchmark'):
                stats = time_models(args, variant_models, backward, variant)
            title = f'{label}, {b} x {h} x {w}' + (
                '' if variant == 'default' else f', variant {variant}') + ':'
            print_table(title, stats, gmacs, ref)
            tables.append(dict(variant=variant, mode='train' if backward else 'eval', rows={
                name: dict(gmacs=gmacs[name], best_ms=min(st['times']) * 1e3,
                           median_ms=statistics.median(st['times']) * 1e3,
                           peak_mib=st['peak_mb']) for name, st in stats.items()}))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(torch=torch.__version__, device=dev_name, amp=args.amp,
                           batch_size=b, num_slices=n, shape=[h, w], norm=args.norm,
                           warmup=args.warmup, repeats=args.repeats, tables=tables), f,
                      indent=1)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

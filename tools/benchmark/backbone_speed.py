"""Backbone speed: MP3D-63 vs MR3D vs FPN+3DCE vs mmdet's 2D ResNet-50, side by side.

Times the forward pass (and with ``--backward`` forward + backward) of each backbone on
one input at ``--shape`` (default 512 x 512): the 3D models and 3DCE on ``N`` slices
(default 9), ResNet-50 on one 3-channel image. The models run interleaved, round by
round, and the best (minimum) and median round are reported, so that load from other
processes affects all of them alike. Every model's multiply-accumulates (GMACs, the
paper's "GFLOPs" convention, see ``mp3d_mmdet.models.utils.op_counter``) are counted
on meta tensors, and the time per GMAC is reported relative to ResNet-50's. On CUDA the
peak memory (``torch.cuda.max_memory_allocated``) of every model is printed too.

Examples::

    python tools/benchmark/backbone_speed.py                     # CPU, 512 x 512
    python tools/benchmark/backbone_speed.py --quick             # CPU, 256 x 256
    python tools/benchmark/backbone_speed.py --conv-micro        # Conv3d vs 2D routes
    python tools/benchmark/backbone_speed.py --device cuda --amp --backward

``--malloc retain`` (default on CPU) keeps freed memory in the process (see
``mp3d_mmdet.utils.cpu_memory``) for all models alike; ``--malloc default``
leaves glibc as it is (large activations are then page-faulted every pass).
"""
import argparse
import statistics
import sys
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--amp', action='store_true',
                   help='autocast to float16 (CUDA only)')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=None,
                   help='input size (default 512 512; 256 256 with --quick)')
    p.add_argument('--num-slices', type=int, default=9)
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
    p.add_argument('--conv-impl', choices=('auto', 'conv3d', 'fold2d', 'fold2d_gemm'),
                   default='auto',
                   help='SliceConv3d kernel routing in MP3D/MR3D')
    p.add_argument('--malloc', choices=('retain', 'default'), default='retain',
                   help='CPU only: keep freed memory in the process (retain) or not')
    p.add_argument('--conv-micro', action='store_true',
                   help='time each pseudo-3D conv as conv3d vs conv2d on reshaped views, '
                   'and the whole MP3D backbone under each routing, then exit')
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
    if args.repeats < 1 or args.warmup < 0:
        p.error('--repeats must be >= 1 and --warmup >= 0')
    return args


def norm_cfg(kind: str, dims: int) -> Dict:
    if kind == 'gn':
        return dict(type='GN', num_groups=32, requires_grad=True)
    return dict(type='BN3d' if dims == 3 else 'BN', requires_grad=True)


def build_models(args) -> Dict[str, Tuple[Callable[[], nn.Module], Tuple[int, ...]]]:
    """name -> (builder, input shape)."""
    from mmdet.registry import MODELS
    n, (h, w) = args.num_slices, args.shape
    r50 = dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3), frozen_stages=-1,
               norm_cfg=norm_cfg(args.norm, 2), norm_eval=False, style='pytorch')
    table = {
        'mp3d': (lambda: MODELS.build(dict(type='MP3DResNet', num_slices=n,
                                           norm_cfg=norm_cfg(args.norm, 3))), (1, n, h, w)),
        'mr3d': (lambda: MODELS.build(dict(type='MR3DResNet', num_slices=n,
                                           norm_cfg=norm_cfg(args.norm, 3))), (1, n, h, w)),
        '3dce': (lambda: MODELS.build(dict(type='ResNet3DCE', num_slices=n, resnet=r50)),
                 (1, n, h, w)),
        'resnet50': (lambda: MODELS.build(r50), (1, 3, h, w)),
        'resnet50-cl': (lambda: MODELS.build(r50).to(memory_format=torch.channels_last),
                        (1, 3, h, w)),
    }
    return {k: table[k] for k in args.models}


def count_gmacs(builder: Callable[[], nn.Module], shape: Tuple[int, ...]) -> float:
    """GMACs of one forward, every conv counted as a dense conv (paper convention)."""
    from mp3d_mmdet.models.backbones.slice_ops import set_conv_impl
    from mp3d_mmdet.models.utils import count_macs
    with torch.device('meta'):
        model = builder()
    set_conv_impl(model, 'conv3d')
    model.eval()
    return count_macs(model, torch.zeros(shape, device='meta')) / 1e9


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


def time_models(args, models, mode_backward: bool) -> Dict[str, Dict]:
    """Interleaved rounds over all models; returns per-model timing stats."""
    from mp3d_mmdet.models.backbones.slice_ops import set_conv_impl
    device = torch.device(args.device)
    runners, stats = {}, {}
    for name, (builder, shape) in models.items():
        model = builder()  # default torch init: timing does not depend on the values
        set_conv_impl(model, args.conv_impl)
        model.to(device)
        x = torch.randn(shape, device=device)
        if name == 'resnet50-cl':
            x = x.contiguous(memory_format=torch.channels_last)
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


def _time_call(fn: Callable[[], object], args, device: torch.device) -> float:
    """Best of ``args.repeats`` calls after ``args.warmup``, in ms."""
    ts = []
    for i in range(args.warmup + args.repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= args.warmup:
            ts.append(time.perf_counter() - t0)
    return min(ts) * 1e3


def conv_micro(args) -> None:
    """Time each pseudo-3D conv kind under every SliceConv3d route, then whole MP3D."""
    from mp3d_mmdet.models.backbones.slice_ops import (SliceConv3d, set_conv_impl,
                                                       to_slice_layout)
    device = torch.device(args.device)
    h, w = args.shape
    n = args.num_slices
    impls = ('conv3d', 'fold2d', 'fold2d_gemm')
    print(f'\nper-conv forward, ms (best of {args.repeats}); input (1, C, {n}, H, W) in '
          'channels_last_3d order, "conv3d NCDHW" on a contiguous input:')
    print('| conv | input | conv3d NCDHW | ' + ' | '.join(impls) + ' | fastest |')
    print('|---|---|---|' + '---|' * len(impls) + '---|')
    for stage, (c, div) in enumerate([(64, 4), (128, 8), (256, 16), (512, 32)]):
        size = (1, c, n, h // div, w // div)
        for label, kw in (('S 1x3x3', dict(kernel_size=(1, 3, 3), padding=(0, 1, 1))),
                          ('T 3x1x1', dict(kernel_size=(3, 1, 1), padding=(1, 0, 0))),
                          ('1x1x1 x4', dict(kernel_size=1))):
            cout = 4 * c if label.startswith('1x1x1') else c
            conv = SliceConv3d(c, cout, bias=False, **kw).to(device)
            x = torch.randn(size, device=device)
            x_cl = to_slice_layout(x)
            res = {}
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16,
                                                 enabled=args.amp):
                conv.impl = 'conv3d'
                res['conv3d NCDHW'] = _time_call(lambda: conv(x), args, device)
                for impl in impls:
                    conv.impl = impl
                    res[impl] = _time_call(lambda: conv(x_cl), args, device)
            best = min(res, key=res.get)
            cells = ' | '.join(f'{res[k]:.1f}' for k in ['conv3d NCDHW', *impls])
            print(f'| stage{stage + 1} {label} | {c}x{n}x{h // div}x{w // div} | {cells} '
                  f'| {best} |', flush=True)
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='MP3DResNet', num_slices=n,
                              norm_cfg=norm_cfg(args.norm, 3)))
    model.to(device).eval()
    x = torch.randn(1, n, h, w, device=device)
    runner = Runner(model, x, False, args.amp)
    times = {impl: [] for impl in ('conv3d', 'fold2d', 'fold2d_gemm')}
    for impl in times:
        set_conv_impl(model, impl)
        for _ in range(args.warmup):
            runner.step()
    for _ in range(args.repeats):
        for impl in times:
            set_conv_impl(model, impl)
            times[impl].append(runner.step())
    auto = 'fold2d_gemm' if device.type == 'cpu' else 'conv3d'
    print(f'\nwhole MP3D-63 forward, {n} x {h} x {w}, {args.repeats} interleaved rounds '
          f"('auto' = {auto} on {device.type}):")
    print('| impl | best ms | median ms |\n|---|---|---|')
    for k, v in times.items():
        print(f'| {k} | {min(v) * 1e3:.0f} | {statistics.median(v) * 1e3:.0f} |')


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
        torch.backends.cudnn.benchmark = True
        dev_name = torch.cuda.get_device_name()
    else:
        dev_name = f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__}; device: {dev_name}; amp: {args.amp}; malloc: '
          f'{malloc}; norm: {args.norm}; conv impl: {args.conv_impl}')
    torch.manual_seed(0)
    if args.conv_micro:
        conv_micro(args)
        return 0
    models = build_models(args)
    gmacs = {k: count_gmacs(b, s) for k, (b, s) in models.items()}
    h, w = args.shape
    print(f'inputs: 3D models and 3DCE (1, {args.num_slices}, {h}, {w}); ResNet-50 '
          f'(1, 3, {h}, {w}); {args.warmup} warm-up + {args.repeats} timed rounds')
    ref = 'resnet50' if 'resnet50' in models else next(iter(models))
    modes = [False, True] if args.backward else [False]
    for backward in modes:
        label = 'forward + backward (train mode)' if backward else 'forward (eval, no grad)'
        print(f'\n== {label}')
        stats = time_models(args, models, backward)
        print_table(f'{label}, {h} x {w}:', stats, gmacs, ref)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Count multiply-accumulates (MACs) of a forward pass at the aten-op level.

Convention (the one that reproduces the MP3D paper's GFLOPs, i.e. mmcv's classic
``get_model_complexity_info`` hooks, where one "FLOP" is one multiply-add):

* convolution: ``out.numel() * C_in / groups * prod(kernel)``, plus ``out.numel()``
  for the bias when there is one;
* matrix products (``Linear``, ``mm``, ``addmm``, ``bmm``): ``M * K * N`` (a ``Linear``
  bias is not counted);
* ReLU: ``out.numel()``;
* max / average pooling (incl. adaptive): ``input.numel()``;
* not counted: normalisation (GroupNorm, BatchNorm), element-wise sums, interpolation,
  reshapes, RoIAlign and other custom (non-aten) ops.

Counting happens in a ``TorchDispatchMode``, so it sees every aten op whichever module
or functional call issued it; it also works on ``meta`` tensors (shapes only, no compute),
which is how ``complexity.py`` measures a 512 x 512 detector without computing it.
"""
import math
from collections import defaultdict
from typing import Callable, Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['MacCounter', 'count_macs']

aten = torch.ops.aten


def _conv_macs(args, kwargs, out) -> int:
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else kwargs.get('bias')
    transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get('transposed', False))
    if transposed:  # weight (C_in, C_out/groups, *k): each input meets C_out/g * prod(k)
        macs = x.numel() * w.shape[1] * math.prod(w.shape[2:])
    else:
        macs = out.numel() * w.shape[1] * math.prod(w.shape[2:])
    if bias is not None:
        macs += out.numel()
    return macs


def _addmm_macs(args, kwargs, out) -> int:
    m1, m2 = args[1], args[2]
    return m1.shape[0] * m1.shape[1] * m2.shape[1]


def _mm_macs(args, kwargs, out) -> int:
    m1, m2 = args[0], args[1]
    return m1.shape[0] * m1.shape[1] * m2.shape[1]


def _bmm_macs(args, kwargs, out) -> int:
    b1, b2 = args[0], args[1]
    return b1.shape[0] * b1.shape[1] * b1.shape[2] * b2.shape[2]


def _baddbmm_macs(args, kwargs, out) -> int:
    return _bmm_macs(args[1:], kwargs, out)


def _out_numel(args, kwargs, out) -> int:
    return out.numel()


def _in_numel(args, kwargs, out) -> int:
    return args[0].numel()


def _handlers() -> Dict[object, Callable]:
    table = {
        'convolution': _conv_macs,
        '_convolution': _conv_macs,
        'addmm': _addmm_macs,
        'mm': _mm_macs,
        'bmm': _bmm_macs,
        'baddbmm': _baddbmm_macs,
        'relu': _out_numel,
        'relu_': _out_numel,
    }
    for pool in ('max_pool1d', 'max_pool2d', 'max_pool3d', 'max_pool1d_with_indices',
                 'max_pool2d_with_indices', 'max_pool3d_with_indices', 'avg_pool1d',
                 'avg_pool2d', 'avg_pool3d', 'adaptive_avg_pool1d', 'adaptive_avg_pool2d',
                 'adaptive_avg_pool3d', '_adaptive_avg_pool2d', '_adaptive_avg_pool3d',
                 'adaptive_max_pool2d', 'adaptive_max_pool3d', 'mkldnn_max_pool2d',
                 'mkldnn_max_pool3d'):
        table[pool] = _in_numel
    out = {}
    for name, fn in table.items():
        packet = getattr(aten, name, None)
        if packet is not None:
            out[packet] = fn
    return out


class MacCounter(TorchDispatchMode):
    """Context manager that counts MACs of the aten ops run inside it.

    Attributes:
        macs: total multiply-accumulates counted.
        by_op: ``{op name: MACs}``.

    Example::

        with MacCounter() as counter:
            model(torch.zeros(1, 9, 512, 512, device='meta'))
        print(counter.macs / 1e9, 'GMACs')
    """

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.by_op: Dict[str, int] = defaultdict(int)
        self._handlers = _handlers()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        handler = self._handlers.get(func.overloadpacket)
        if handler is not None:
            first = out[0] if isinstance(out, (tuple, list)) else out
            n = int(handler(args, kwargs, first))
            self.macs += n
            self.by_op[func.overloadpacket.__name__] += n
        return out


def count_macs(fn: Callable, *args, **kwargs) -> int:
    """Run ``fn(*args, **kwargs)`` under :class:`MacCounter` (no grad); return MACs."""
    with torch.no_grad(), MacCounter() as counter:
        fn(*args, **kwargs)
    return counter.macs

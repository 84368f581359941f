"""The arithmetic precision of the network: float32, or autocast to bfloat16 / float16.

``auto`` picks what the device runs fastest without changing what a user sees: float16
autocast on CUDA, bfloat16 autocast on CPUs with native bfloat16 arithmetic (AVX512_BF16 or
AMX, read from ``/proc/cpuinfo``), float32 elsewhere (:func:`resolve_precision`). Autocast
covers the feature extractor (backbone, GTM, FPN: nearly all of the network's time); the
heads, mmcv's RoI ops (float32 kernels only) and NMS run in float32 on its float32-cast
feature maps (:func:`precision_context`), so boxes and scores are float32 whatever the
precision.
"""
import contextlib
import functools
from typing import Any, Iterator, Tuple

import torch

from .settings import InferenceSetupError

__all__ = ['PRECISIONS', 'cpu_bf16_flags', 'resolve_precision', 'precision_context']

#: The ``--precision`` choices.
PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
_CPU_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags(cpuinfo: str = '/proc/cpuinfo') -> Tuple[str, ...]:
    """The CPU's native bfloat16 instruction sets among ``avx512_bf16`` and ``amx_bf16``
    (the ``flags`` of ``cpuinfo``; empty where the file does not exist)."""
    try:
        with open(cpuinfo, encoding='utf-8', errors='replace') as handle:
            text = handle.read()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith('flags'):
            flags.update(line.split(':', 1)[-1].split())
    return tuple(flag for flag in _CPU_BF16_FLAGS if flag in flags)


def resolve_precision(precision: str, device: str) -> str:
    """The precision used for ``precision`` on ``device``.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.

    Returns:
        ``'fp32'``, ``'bf16'`` or ``'fp16'`` (``auto``: module docstring).

    Raises:
        InferenceSetupError: an unknown precision, or ``fp16`` on the CPU (torch's CPU
            float16 kernels are slower than float32).
    """
    if precision not in PRECISIONS:
        raise InferenceSetupError(f'precision must be one of {", ".join(PRECISIONS)}, got '
                                  f'{precision!r}')
    on_cuda = device.startswith('cuda')
    if precision == 'auto':
        if on_cuda:
            return 'fp16'
        return 'bf16' if cpu_bf16_flags() else 'fp32'
    if precision == 'fp16' and not on_cuda:
        raise InferenceSetupError('--precision fp16 needs a CUDA device (on the CPU use bf16, '
                                  'or auto)')
    return precision


def _float32(value: Any) -> Any:
    """``value`` with every floating tensor in it (tuples and lists too) as float32."""
    if torch.is_tensor(value):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_float32(v) for v in value)
    return value


@contextlib.contextmanager
def precision_context(model: torch.nn.Module, precision: str, device: str) -> Iterator[None]:
    """Run ``model`` in ``precision`` (a resolved one) inside the ``with`` block: nothing for
    ``fp32``; otherwise its feature extractor (``model.extract_feat``: backbone, GTM and FPN,
    nearly all of the network's time) under ``torch.autocast`` of ``device``'s type, its
    feature maps handed on as float32, so that the heads, the RoI ops and NMS run in float32
    as always. ``model.extract_feat`` is restored on exit."""
    if precision == 'fp32':
        yield
        return
    device_type = 'cuda' if device.startswith('cuda') else 'cpu'
    dtype = _DTYPES[precision]
    extract_feat = model.extract_feat

    @functools.wraps(extract_feat)
    def extract_feat_autocast(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            features = extract_feat(*args, **kwargs)
        return _float32(features)

    model.extract_feat = extract_feat_autocast
    try:
        yield
    finally:
        del model.extract_feat  # the class's method again

"""Process groups on CPU-only machines through mmengine's launchers.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` whatever the backend, which fails on
a machine without CUDA; the runner (training on CPUs) and the batch volume detector (CPU
ranks under torchrun / srun) both initialise gloo groups inside :func:`skip_cuda_set_device`.
"""
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ['skip_cuda_set_device']


@contextmanager
def skip_cuda_set_device() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block (CPU-only process groups)."""
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original

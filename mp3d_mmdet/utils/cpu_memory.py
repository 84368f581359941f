"""Keep freed CPU memory in the process, so big activations do not page-fault every pass.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and returns it to the OS on ``free``. The MP3D backbone's activations
are ``N`` times those of a 2D ResNet (e.g. 151 MB for one stage-1 map at 9 slices and
512 x 512), so on CPU every one of them is mapped, page-faulted (zero-filled by the
kernel) and unmapped again in every forward pass; that kernel time was measured at
about half the backbone's wall time. A 2D ResNet-50 on one image stays under the
threshold and reuses its memory. :func:`retain_freed_cpu_memory` makes glibc keep
freed blocks in the heap for reuse -- what the CUDA caching allocator does on GPU.
The process then keeps its peak heap size instead of shrinking after each pass.

The same holds for data loading: an N-slice training sample allocates several arrays of
``N x H x W`` float32 (9.4 MB at 9 slices and 512 x 512), each above the threshold, so
:class:`~mp3d_mmdet.datasets.transforms.LoadCTSlices` calls it in every process it runs
in (the dataloader workers included; ``tools/benchmark/loader_speed.py`` measures it).
"""
import ctypes
import ctypes.util
import os
import sys
from typing import Dict

__all__ = ['retain_freed_cpu_memory']

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# result per process id: a forked dataloader worker inherits this dict and still applies the
# settings itself on its first call
_applied: Dict[int, bool] = {}


def retain_freed_cpu_memory() -> bool:
    """Configure glibc malloc to reuse freed memory instead of unmapping it.

    Sets ``M_MMAP_MAX = 0`` (no per-block ``mmap``: large blocks come from the heap)
    and ``M_TRIM_THRESHOLD`` to its maximum (freed heap memory is not returned to the
    OS). Process-wide and irreversible for the process. ``DeviceAwareRunner`` calls it for
    CPU runs, ``LoadCTSlices`` in every process it loads data in (GPU runs' dataloader
    workers included). Later calls in the same process return the
    first call's result at the cost of a dict lookup.

    Returns:
        True if applied; False where it does not apply (not Linux, or no glibc
        ``mallopt``), leaving the allocator unchanged.
    """
    pid = os.getpid()
    if pid not in _applied:
        _applied[pid] = _apply_mallopt()
    return _applied[pid]


def _apply_mallopt() -> bool:
    if not sys.platform.startswith('linux'):
        return False
    name = ctypes.util.find_library('c') or 'libc.so.6'
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return ok_mmap and ok_trim

"""retain_freed_cpu_memory: freed large blocks are reused instead of mapped afresh."""
import subprocess
import sys

import pytest

# Allocates, touches and frees a 64 MiB block twice; prints the minor page faults of the
# second round. With glibc's default malloc the block (above the 32 MiB mmap ceiling) is
# mapped again: 16k fresh 4 KiB pages, or fewer where transparent huge pages serve it; with
# freed memory retained it is reused from the heap (no fresh pages).
_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == 'retain':
    from mp3d_mmdet.utils import retain_freed_cpu_memory
    assert retain_freed_cpu_memory()
def touch():
    block = np.empty(64 * 2**20, np.uint8)
    block.fill(1)
    del block
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_round_page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', _PROBE, mode], check=True,
                         capture_output=True, encoding='utf-8', errors='replace').stdout
    return int(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt')
def test_freed_memory_is_reused_instead_of_page_faulted_again():
    default = _second_round_page_faults('default')
    assert default >= 64 * 2**20 // (2 * 2**21)  # at least one fault per two 2 MiB pages
    assert _second_round_page_faults('retain') <= default // 10


def test_applied_once_per_process(monkeypatch):
    from mp3d_mmdet.utils import cpu_memory
    calls = []
    monkeypatch.setattr(cpu_memory, '_applied', {})
    monkeypatch.setattr(cpu_memory, '_apply_mallopt', lambda: calls.append(1) or True)
    assert cpu_memory.retain_freed_cpu_memory() and cpu_memory.retain_freed_cpu_memory()
    assert calls == [1]
    monkeypatch.setattr(cpu_memory.os, 'getpid', lambda: -1)  # as in a forked worker
    assert cpu_memory.retain_freed_cpu_memory()
    assert calls == [1, 1]

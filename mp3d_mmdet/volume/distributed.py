"""A batch shared among processes started by torchrun, Slurm or MPI (mmengine's launchers).

**Launch** (:func:`init_launcher`): ``launcher='pytorch'`` (``torchrun``), ``'slurm'``
(``srun``) or ``'mpi'`` initialises ``torch.distributed`` through
:func:`mmengine.dist.init_dist` -- NCCL on CUDA, each process on the GPU of its local rank;
gloo on the CPU, each process with its share of the node's CPU threads. ``'none'``: one
process, nothing initialised.

**Shares and part files.** The first process (rank 0) opens the results file (lock, header,
resume rules of :mod:`.results_file`), takes in the part files an earlier run left
(:func:`absorb_part_files`) and lists the pending volumes; process ``r`` of ``W`` detects
pending volumes ``r, r + W, r + 2W, ...`` and appends their lines to its part file
``OUT/detections_3d.part-<r>.jsonl`` (:func:`part_file_name`; the results file's format, one
fsynced line per volume). At the end rank 0 merges the parts into the results file in input
order and removes them, so the file is the one a single process writes. An interrupted run
leaves the parts; the next run, with any number of processes, takes them in first.
"""
import os
import os.path as osp
import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Sequence, Tuple, TypeVar

from ..utils.cpu_process_group import skip_cuda_set_device
from .results_file import RESULTS_FILE_NAME, VolumeResultsFile, read_partial_results

__all__ = ['LAUNCHERS', 'init_launcher', 'dist_info', 'part_file_name', 'absorb_part_files',
           'share_of', 'broadcast_from_first', 'gather_all', 'PartFileProgress']

#: The ``--launcher`` choices (mmengine's, as ``mim test`` takes them).
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

Item = TypeVar('Item')


def _local_world_size() -> int:
    for key in ('LOCAL_WORLD_SIZE', 'SLURM_NTASKS_PER_NODE', 'OMPI_COMM_WORLD_LOCAL_SIZE'):
        value = os.environ.get(key, '').split('(')[0]
        if value.isdigit() and int(value) > 0:
            return int(value)
    from mmengine.dist import get_world_size
    return get_world_size()


def init_launcher(launcher: str, device: str) -> str:
    """Initialise ``torch.distributed`` for ``launcher`` (module docstring) and return the
    device this process uses: ``device`` itself, except ``cuda`` -> ``cuda:<local rank>``.

    On the CPU, each of the node's processes gets ``cpu count // processes on the node``
    torch threads (at least 1).

    Raises:
        ValueError: an unknown launcher, or a launcher's environment variables missing (not
            started by torchrun / srun / mpirun).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {", ".join(LAUNCHERS)}, got {launcher!r}')
    if launcher == 'none':
        return device
    import torch
    from mmengine.dist import get_local_rank, init_dist, is_distributed
    on_cuda = device.startswith('cuda')
    if not is_distributed():
        try:
            if on_cuda:
                init_dist(launcher, backend='nccl')
            else:  # mmengine pins a CUDA device for every launcher: not on a CPU-only node
                with skip_cuda_set_device():
                    init_dist(launcher, backend='gloo')
        except KeyError as error:  # mmengine reads os.environ[NAME], or says what is missing
            missing = str(error.args[0] if error.args else error)
            if missing.isidentifier():
                missing = f'environment variable {missing} is not set'
            raise ValueError(f'--launcher {launcher}: {missing} (start the command with '
                             'torchrun, srun or mpirun, or use --launcher none)') from None
    if on_cuda:
        return f'cuda:{get_local_rank()}' if device == 'cuda' else device
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    torch.set_num_threads(max(1, (cpus or 1) // _local_world_size()))
    return device


def dist_info() -> Tuple[int, int]:
    """``(rank, world size)`` of this process (``(0, 1)`` when not distributed)."""
    from mmengine.dist import get_dist_info
    return get_dist_info()


def part_file_name(rank: int) -> str:
    """The part file of process ``rank`` in the output folder."""
    return f'{RESULTS_FILE_NAME[:-len(".jsonl")]}.part-{rank}.jsonl'


def _part_files(out_dir: str) -> List[str]:
    """The part files in ``out_dir``, by rank."""
    pattern = re.compile(re.escape(part_file_name(0)).replace('0', r'(\d+)', 1) + '$')
    found = [(int(m.group(1)), entry) for entry in os.listdir(out_dir)
             for m in [pattern.match(entry)] if m]
    return [osp.join(out_dir, entry) for _, entry in sorted(found)]


def absorb_part_files(results: VolumeResultsFile, out_dir: str, restart: bool) -> List[str]:
    """Merge the part files in ``out_dir`` into ``results`` and remove them (``restart``:
    only remove them); their incomplete last lines are left out.

    Returns:
        Warnings (each incomplete line left out).

    Raises:
        ValueError: a part file is malformed or holds other settings than ``results``
            (without ``restart``; one line naming the file and the option).
    """
    paths = _part_files(out_dir)
    warnings: List[str] = []
    if not restart:
        texts = {}
        for path in paths:
            try:
                header, lines, warning = read_partial_results(path)
            except ValueError as error:
                raise ValueError(f'{error}; pass {results.restart_option} to start anew, or '
                                 'choose another output folder') from None
            if header.get('settings') != results.header.get('settings'):
                raise ValueError(f'{path} holds {len(lines)} volume(s) of an interrupted '
                                 f'run with other settings than {results.path}; pass '
                                 f'{results.restart_option} to start anew, or choose another '
                                 'output folder')
            if warning is not None:
                warnings.append(warning)
            texts.update(lines)
        if texts:
            results.merge(texts)
    for path in paths:
        os.remove(path)
    return warnings


def share_of(items: Sequence[Item], rank: int, world: int) -> List[Item]:
    """Process ``rank``'s share of ``items``: items ``rank, rank + world, ...``."""
    return list(items[rank::world])


def broadcast_from_first(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself when not distributed)."""
    from mmengine.dist import broadcast_object_list, get_world_size
    if get_world_size() == 1:
        return obj
    holder = [obj]
    broadcast_object_list(holder, src=0)
    return holder[0]


def gather_all(obj: Any) -> List[Any]:
    """Every rank's ``obj``, by rank, on every rank."""
    from mmengine.dist import all_gather_object, get_world_size
    if get_world_size() == 1:
        return [obj]
    return all_gather_object(obj)


class PartFileProgress:
    """Counts the lines appended to the part files of ``out_dir`` (rank 0's view of the
    whole job), polling every ``interval`` seconds in a thread while in its ``with`` block,
    and calls ``update(count)`` with the total each time it grows."""

    def __init__(self, out_dir: str, world: int, update: Any, interval: float = 0.5) -> None:
        self.paths = [osp.join(out_dir, part_file_name(rank)) for rank in range(world)]
        self.update = update
        self.interval = interval
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name='part-file-progress',
                                        daemon=True)

    def lines(self) -> int:
        """Volume lines in the part files now."""
        total = 0
        for path in self.paths:
            try:
                with open(path, 'rb') as handle:
                    total += max(0, handle.read().count(b'\n') - 1)
            except OSError:
                pass
        return total

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            count = self.lines()
            if count > self.count:
                self.count = count
                self.update(count)

    @contextmanager
    def running(self) -> Iterator['PartFileProgress']:
        """Poll while in the block."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

"""The one mechanism that runs any mp3d_mmdet config on a machine without a GPU.

The paper's configs train with mixed precision (``AmpOptimWrapper``) and NCCL, as a GPU
user wants. Both fail without CUDA: mmengine's AMP wrapper asserts a GPU, NCCL needs one,
DDP is built with ``device_ids=[local_rank]`` and mmengine's ``init_dist`` calls
``torch.cuda.set_device`` whatever the backend. Every config in ``configs/`` therefore sets
``runner_type = 'DeviceAwareRunner'``. When CUDA is available it is exactly mmengine's
``Runner``. When it is not (a CPU-only machine, or ``CUDA_VISIBLE_DEVICES=''`` to force the
CPU on a GPU machine) it adapts the config before building, and logs each change:

* ``optim_wrapper.type``: ``AmpOptimWrapper`` -> ``OptimWrapper`` (AMP-only keys dropped);
* ``env_cfg.dist_cfg.backend``: ``nccl`` -> ``gloo``;
* ``model_wrapper_cfg``: ``MMDistributedDataParallel`` with ``device_ids=None`` (CPU DDP);
* ``torch.cuda.set_device`` is skipped while mmengine initialises the process group;
* glibc keeps freed memory for reuse (:func:`~mp3d_mmdet.utils.retain_freed_cpu_memory`):
  the 3D activations exceed malloc's mmap threshold and would otherwise be page-faulted
  afresh in every pass, about half of the backbone's CPU time.

So ``mim train mmdet CONFIG`` (and ``--launcher pytorch --gpus 2`` for two CPU processes)
and ``mim test`` run unchanged on a CPU; nothing in the config file needs editing.

On every device it also handles checkpoint files with care: a checkpoint is written to a
hidden ``.partial`` file and renamed into place once complete (with
:class:`~mp3d_mmdet.engine.hooks.CrashSafeCheckpointHook`, a run killed at any moment can be
resumed), and a checkpoint to load or resume from is checked first, so that a wrong file
gives a one-line error naming it (:mod:`mp3d_mmdet.utils.checkpoint_files`). Another
mmdet project gets the same behaviour with ``runner_type = 'DeviceAwareRunner'`` next to
``custom_imports = dict(imports=['mp3d_mmdet'])``.
"""
import copy
import functools
import os.path as osp
import re
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.dist import master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint_files import CheckpointFileError, check_checkpoint_file
from .cpu_memory import retain_freed_cpu_memory
from .safe_files import replace_with_complete_file

#: Keys of AmpOptimWrapper that the plain OptimWrapper does not accept.
_AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def cpu_config_changes(cfg: Union[Config, ConfigDict, dict]) -> List[str]:
    """Adapt a runner config in place for a machine without CUDA.

    Args:
        cfg: a full runner config (the object ``Runner.from_cfg`` receives).

    Returns:
        list[str]: one human-readable line per change made (empty if none was needed).
    """
    changes: List[str] = []
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is not None and optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper['type'] = 'OptimWrapper'
        for key in _AMP_ONLY_KEYS:
            optim_wrapper.pop(key, None)
        changes.append('optim_wrapper: AmpOptimWrapper -> OptimWrapper (AMP needs a GPU)')

    env_cfg = cfg.get('env_cfg')
    if env_cfg is None:
        env_cfg = cfg['env_cfg'] = dict(dist_cfg=dict(backend='nccl'))
    dist_cfg = env_cfg.setdefault('dist_cfg', dict(backend='nccl'))
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        changes.append(f"env_cfg.dist_cfg.backend: {dist_cfg.get('backend', 'nccl')} -> gloo")
        dist_cfg['backend'] = 'gloo'

    if cfg.get('launcher', 'none') != 'none':
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False)
        if wrapper.get('device_ids', 'unset') is not None:
            wrapper['device_ids'] = None
            changes.append(f"model_wrapper_cfg: {wrapper['type']} with device_ids=None (CPU DDP)")
        cfg['model_wrapper_cfg'] = wrapper
    return changes


@contextmanager
def _skip_cuda_set_device() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block (CPU-only process groups)."""
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


@RUNNERS.register_module()
class DeviceAwareRunner(Runner):
    """mmengine ``Runner`` that falls back to CPU-safe settings when CUDA is unavailable and
    writes and reads checkpoint files safely.

    See the module docstring for the exact changes. With CUDA its training is ``Runner``'s.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict, Dict]) -> Runner:
        """Build the runner, adapting ``cfg`` (a copy) for CPU if CUDA is unavailable."""
        if not torch.cuda.is_available():
            cfg = copy.deepcopy(cfg)
            for change in cpu_config_changes(cfg):
                print_log(f'DeviceAwareRunner (no CUDA): {change}', logger='current')
            if retain_freed_cpu_memory():
                print_log('DeviceAwareRunner (no CUDA): malloc keeps freed memory for reuse',
                          logger='current')
        return super().from_cfg(cfg)

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args=None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """``Runner.save_checkpoint``, written whole or not at all on a local disk.

        The checkpoint is written to ``.<filename>.partial`` in ``out_dir``, flushed to disk
        and renamed to ``filename``: a run killed while saving leaves no truncated
        checkpoint under the real name. Other storage backends are written as mmengine does.
        """
        arguments = dict(file_client_args=file_client_args, save_optimizer=save_optimizer,
                         save_param_scheduler=save_param_scheduler, meta=meta,
                         by_epoch=by_epoch, backend_args=backend_args)
        if file_client_args is not None or not isinstance(
                get_file_backend(out_dir, backend_args=backend_args), LocalBackend):
            super().save_checkpoint(out_dir, filename, **arguments)
            return
        partial = f'.{filename}.partial'
        super().save_checkpoint(out_dir, partial, **arguments)
        replace_with_complete_file(osp.join(out_dir, partial), osp.join(out_dir, filename))

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module.', '')]):
        """``Runner.load_checkpoint`` (``load_from``, ``mim test --checkpoint``) with the file
        checked first, and refused if none of its weights belongs to the model.

        Raises:
            FileNotFoundError / CheckpointFileError: not a PyTorch checkpoint file
                (:func:`~mp3d_mmdet.utils.checkpoint_files.check_checkpoint_file`).
            CheckpointFileError: no weight of the file matches a weight of the model
                (another model's checkpoint); partial matches are loaded and logged as
                mmengine does (e.g. a pre-training checkpoint without the classifier).
        """
        if '://' not in filename:  # a local file (not torchvision://, http:// ...)
            check_checkpoint_file(filename)
        checkpoint = super().load_checkpoint(filename, map_location, strict, revise_keys)
        state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(
            checkpoint, dict) else {}
        model = self.model.module if is_model_wrapper(self.model) else self.model
        own = model.state_dict()
        keys = [functools.reduce(lambda key, rule: re.sub(rule[0], rule[1], key),
                                 revise_keys, key) for key in state_dict]
        if own and not any(key in own for key in keys):
            raise CheckpointFileError(
                f'{filename}: none of its {len(keys)} weights belongs to the model (file: '
                f'{keys[:2]} ..., model: {list(own)[:2]} ...); not a checkpoint of this '
                'config\'s model')
        return checkpoint

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """``Runner.resume`` with the file checked first (see :meth:`load_checkpoint`)."""
        if '://' not in filename:  # a local file (not torchvision://, http:// ...)
            check_checkpoint_file(filename)
        super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)

    def setup_env(self, env_cfg: Dict) -> None:
        """Set up the environment; on CPU, without mmengine's ``torch.cuda.set_device`` call."""
        if torch.cuda.is_available():
            super().setup_env(env_cfg)
            return
        with _skip_cuda_set_device():
            super().setup_env(env_cfg)

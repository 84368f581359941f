"""The runner of every mp3d_mmdet config: mmengine's ``Runner`` plus three things.

Every config in ``configs/`` sets ``runner_type = 'DeviceAwareRunner'``; another mmdet
project gets the same with that line next to ``custom_imports = dict(imports=['mp3d_mmdet'])``.

1. **The config is resolved and checked before anything is built**
   (:mod:`mp3d_mmdet.utils.config`): the slice count, slice interval and HU window set at the
   config's top level reach every place that needs them, places that disagree are refused,
   and a ``FROCMetric`` whose test pipeline gives it no usable ground truth (annotations
   loaded before a transform that moves boxes) is refused -- one line naming the places,
   instead of an error after the first epoch.
2. **CPU fallback.** The paper's configs train with mixed precision (``AmpOptimWrapper``)
   and NCCL, as a GPU user wants. Both fail without CUDA: mmengine's AMP wrapper asserts a
   GPU, NCCL needs one, DDP is built with ``device_ids=[local_rank]`` and mmengine's
   ``init_dist`` calls ``torch.cuda.set_device`` whatever the backend. Without CUDA (a
   CPU-only machine, or ``CUDA_VISIBLE_DEVICES=''``) the runner adapts the config and logs
   each change:

   * ``optim_wrapper.type``: ``AmpOptimWrapper`` -> ``OptimWrapper`` (AMP-only keys dropped);
   * ``env_cfg.dist_cfg.backend``: ``nccl`` -> ``gloo``;
   * ``model_wrapper_cfg``: ``MMDistributedDataParallel`` with ``device_ids=None``;
   * ``torch.cuda.set_device`` is skipped while mmengine initialises the process group;
   * glibc keeps freed memory for reuse (:func:`~mp3d_mmdet.utils.retain_freed_cpu_memory`):
     the 3D activations exceed malloc's mmap threshold and would otherwise be page-faulted
     afresh in every pass.

   So ``mim train mmdet CONFIG`` (and ``--launcher pytorch --gpus 2`` for two CPU
   processes) and ``mim test`` run unchanged on a CPU. With CUDA, training is ``Runner``'s;
   if mmcv was built without CUDA ops, its ``nms`` and ``RoIAlign`` run torchvision's CUDA
   kernels (:mod:`mp3d_mmdet.utils.torchvision_ops`).
3. **Checkpoint files.** A checkpoint is written to a hidden ``.partial`` file and renamed
   into place once complete (with :class:`~mp3d_mmdet.engine.hooks.CrashSafeCheckpointHook`
   a run killed at any moment can be resumed); a checkpoint to load or resume from is
   checked first, so that a wrong file gives a one-line error naming it
   (:mod:`mp3d_mmdet.utils.checkpoint_files`).
"""
import copy
import functools
import os
import os.path as osp
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.dist import master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ...utils.checkpoint_files import CheckpointFileError, check_checkpoint_file
from ...utils.config import check_evaluator_inputs, resolve_config
from ...utils.cpu_memory import retain_freed_cpu_memory
from ...utils.cpu_process_group import skip_cuda_set_device
from ...utils.safe_files import replace_with_complete_file
from ...utils.torchvision_ops import ROUTED_NOTE, route_cuda_ops_if_needed

#: Keys of AmpOptimWrapper that the plain OptimWrapper does not accept.
_AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def cpu_config_changes(cfg: Union[Config, ConfigDict, dict]) -> List[str]:
    """Adapt a runner config in place for a machine without CUDA.

    Args:
        cfg: a full runner config (the object ``Runner.from_cfg`` receives).

    Returns:
        One human-readable line per change made (empty if none was needed).
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


def _check_local_checkpoint(filename: str, hint: str = '') -> None:
    """:func:`check_checkpoint_file` for a local file; URLs (``torchvision://``, ``http://``
    ...) are left to mmengine."""
    if '://' not in filename:
        check_checkpoint_file(filename, hint=hint)


@RUNNERS.register_module()
class DeviceAwareRunner(Runner):
    """mmengine ``Runner`` that falls back to CPU-safe settings when CUDA is unavailable and
    writes and reads checkpoint files safely.

    See the module docstring for the exact changes. With CUDA its training is ``Runner``'s.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict, Dict]) -> Runner:
        """Build the runner from a copy of ``cfg``: its shared settings resolved and its
        evaluators checked (:mod:`mp3d_mmdet.utils.config`), adapted for CPU if CUDA is
        unavailable.

        Raises:
            ConfigError: parts of the config disagree (e.g. the slice counts of a loader and
                the backbone) or an evaluator would not get its inputs; before anything is
                built.
            RuntimeError: CUDA is available, mmcv has no CUDA ops and torchvision cannot be
                imported (:func:`~mp3d_mmdet.utils.torchvision_ops.route_cuda_ops_if_needed`).
        """
        cfg = copy.deepcopy(cfg)
        filled = resolve_config(cfg)
        if filled:
            print_log(f'DeviceAwareRunner: {len(filled)} places take their slice-input '
                      f"settings from the config's top level ({filled[0]}, ...)",
                      logger='current')
        check_evaluator_inputs(cfg)
        if torch.cuda.is_available():
            if route_cuda_ops_if_needed('cuda'):
                print_log(f'DeviceAwareRunner: {ROUTED_NOTE}', logger='current')
        else:
            for change in cpu_config_changes(cfg):
                print_log(f'DeviceAwareRunner (no CUDA): {change}', logger='current')
            if retain_freed_cpu_memory():
                print_log('DeviceAwareRunner (no CUDA): malloc keeps freed memory for reuse',
                          logger='current')
        return super().from_cfg(cfg)

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
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
                        strict: bool = False,
                        revise_keys: Sequence[Tuple[str, str]] = ((r'^module.', ''), )
                        ) -> Dict[str, Any]:
        """``Runner.load_checkpoint`` (``load_from``, ``mim test --checkpoint``) with the file
        checked first, and refused if none of its weights belongs to the model.

        Raises:
            FileNotFoundError / CheckpointFileError: not a PyTorch checkpoint file
                (:func:`~mp3d_mmdet.utils.checkpoint_files.check_checkpoint_file`).
            CheckpointFileError: no weight of the file matches a weight of the model
                (another model's checkpoint); partial matches are loaded and logged as
                mmengine does (e.g. a pre-training checkpoint without the classifier).
        """
        _check_local_checkpoint(
            filename, hint=f' (load_from or --checkpoint; relative paths are read from '
            f'{os.getcwd()}); a pre-training initialisation is made by converting the '
            'pre-training checkpoint first: docs/pretraining.md')
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
        _check_local_checkpoint(filename)
        super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)

    def setup_env(self, env_cfg: Dict) -> None:
        """Set up the environment; on CPU, without mmengine's ``torch.cuda.set_device`` call."""
        if torch.cuda.is_available():
            super().setup_env(env_cfg)
            return
        with skip_cuda_set_device():
            super().setup_env(env_cfg)

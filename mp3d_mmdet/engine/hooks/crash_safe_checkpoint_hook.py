"""mmengine's ``CheckpointHook`` with checkpoints that survive a crash at any moment.

mmengine 0.10.7's hook deletes the oldest kept checkpoint (``max_keep_ckpts``) and the
previous best checkpoint (``save_best``) *before* writing the new one, and rewrites
``last_checkpoint`` in place. A run killed while a checkpoint is written (out of memory,
a cluster's time limit, a power cut) can then be left with the old checkpoint deleted, the
new one truncated and ``last_checkpoint`` naming a missing file: ``--resume`` has nothing
to continue from. With ``max_keep_ckpts=1`` every save opens that window.

:class:`CrashSafeCheckpointHook` keeps mmengine's behaviour and options and changes the
order on a local disk:

1. the new checkpoint is written completely (the runner's ``save_checkpoint``;
   :class:`~mp3d_mmdet.engine.DeviceAwareRunner` writes it to a hidden ``.partial`` file and
   renames it into place);
2. ``last_checkpoint`` is replaced atomically to name it;
3. only then are the checkpoints it supersedes deleted (the oldest kept one, the previous
   best one).

Killed before step 2, the run resumes from the previous checkpoint; after it, from the new
one. ``last_checkpoint`` never names a missing or partial file. Other storage backends are
handled exactly as mmengine does.
"""
import os.path as osp
from typing import Any, List

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmdet.registry import HOOKS

from ...utils.safe_files import atomic_write

__all__ = ['CrashSafeCheckpointHook']


def _delete(backend: Any, path: str) -> None:
    """Delete a checkpoint file or (deepspeed) folder if it is still there."""
    if backend.isfile(path):
        backend.remove(path)
    elif backend.isdir(path):
        backend.rmtree(path)


class _DeferredRemovals:
    """A file backend whose ``remove``/``rmtree`` are recorded, to be carried out by
    :meth:`flush`; every other attribute is the wrapped backend's."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: List[str] = []

    def remove(self, path: str) -> None:
        self.pending.append(path)

    def rmtree(self, path: str) -> None:
        self.pending.append(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def flush(self) -> None:
        """Delete the recorded files and folders (those still present)."""
        for path in self.pending:
            _delete(self._backend, path)
        self.pending = []


@HOOKS.register_module()
class CrashSafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that deletes superseded checkpoints only after the new one is
    complete and ``last_checkpoint`` names it (see the module docstring).

    Takes exactly the arguments of :class:`mmengine.hooks.CheckpointHook`. Use it in place
    of mmengine's in a config::

        default_hooks = dict(checkpoint=dict(type='CrashSafeCheckpointHook', interval=1,
                                             max_keep_ckpts=1))
    """

    def _is_local(self) -> bool:
        return isinstance(self.file_backend, (LocalBackend, _DeferredRemovals))

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        """Save the checkpoint of ``step``: write it, point ``last_checkpoint`` at it, then
        delete the oldest kept checkpoint if ``max_keep_ckpts`` is exceeded."""
        if not self._is_local():
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        superseded = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                superseded.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        with atomic_write(osp.join(runner.work_dir, 'last_checkpoint')) as handle:
            handle.write(self.last_ckpt)
        for old_step in superseded:
            _delete(self.file_backend,
                    self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old_step)))

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        """mmengine's best-checkpoint logic, with the previous best checkpoint deleted only
        after the new one is written."""
        if not self._is_local():
            super()._save_best_checkpoint(runner, metrics)
            return
        backend = self.file_backend
        deferred = self.file_backend = _DeferredRemovals(backend)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        deferred.flush()

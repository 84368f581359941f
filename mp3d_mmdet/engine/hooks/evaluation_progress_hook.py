"""A progress bar over the validation and test loops.

mmengine logs a validation or test loop every ``LoggerHook.interval`` iterations (50 by
default); a DeepLesion test split of 4,817 images on a CPU, or a large validation split on
one GPU, then stays silent for minutes. :class:`EvaluationProgressHook` shows a tqdm bar with
the image rate and the time left, on the main process only, on stderr (updated at most every
``mininterval`` seconds, 30 when stderr is not a terminal so that log files stay short).
"""
import sys
from typing import Any, Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import DataLoader
from mmdet.registry import HOOKS
from tqdm import tqdm

__all__ = ['EvaluationProgressHook']


@HOOKS.register_module()
class EvaluationProgressHook(Hook):
    """tqdm progress bar of the ``val`` and ``test`` loops (see the module docstring).

    Args:
        mininterval: seconds between bar updates; None = 0.5 on a terminal,
            30 otherwise.

    Use it in a config::

        custom_hooks = [dict(type='EvaluationProgressHook')]
    """

    priority = 'VERY_LOW'

    def __init__(self, mininterval: Optional[float] = None) -> None:
        self.mininterval = mininterval
        self._bar: Optional[tqdm] = None

    def _start(self, total: int, desc: str) -> None:
        if not is_main_process():
            return
        interval = self.mininterval
        if interval is None:
            interval = 0.5 if sys.stderr.isatty() else 30.0
        self._bar = tqdm(total=total, desc=desc, unit='img', mininterval=interval,
                         file=sys.stderr, dynamic_ncols=True)

    def _step(self, data_batch: Any) -> None:
        if self._bar is not None:
            samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
            self._bar.update(len(samples) if samples is not None else 1)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @staticmethod
    def _images_of_this_process(dataloader: DataLoader) -> int:
        """Images this process evaluates: its sampler's share in distributed runs."""
        try:
            return len(dataloader.sampler)
        except TypeError:  # a sampler without a length
            return len(dataloader.dataset)

    def before_val_epoch(self, runner: Runner) -> None:
        self._start(self._images_of_this_process(runner.val_dataloader), 'validation')

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:
        self._step(data_batch)

    def after_val_epoch(self, runner: Runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        self._close()

    def before_test_epoch(self, runner: Runner) -> None:
        self._start(self._images_of_this_process(runner.test_dataloader), 'test')

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:
        self._step(data_batch)

    def after_test_epoch(self, runner: Runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        self._close()

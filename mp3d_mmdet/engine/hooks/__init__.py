"""Hooks of the training loop (registered in ``mmdet.registry.HOOKS``)."""
from .crash_safe_checkpoint_hook import CrashSafeCheckpointHook
from .evaluation_progress_hook import EvaluationProgressHook

__all__ = ['CrashSafeCheckpointHook', 'EvaluationProgressHook']

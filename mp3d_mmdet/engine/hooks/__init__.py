"""Hooks of the training loop."""
from .crash_safe_checkpoint_hook import CrashSafeCheckpointHook

__all__ = ['CrashSafeCheckpointHook']

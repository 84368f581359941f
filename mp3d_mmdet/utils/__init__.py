"""Utilities: torch>=2.6 checkpoint loading and the device-aware runner."""
from .checkpoint_compat import allow_mmengine_checkpoints, mmengine_checkpoint_globals
from .device_aware_runner import DeviceAwareRunner, cpu_config_changes

allow_mmengine_checkpoints()

__all__ = [
    'allow_mmengine_checkpoints', 'mmengine_checkpoint_globals', 'DeviceAwareRunner',
    'cpu_config_changes'
]

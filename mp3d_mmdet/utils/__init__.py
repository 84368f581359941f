"""Utilities: torch>=2.6 checkpoint loading, the device-aware runner, CPU memory reuse."""
from .checkpoint_compat import allow_mmengine_checkpoints, mmengine_checkpoint_globals
from .cpu_memory import retain_freed_cpu_memory
from .device_aware_runner import DeviceAwareRunner, cpu_config_changes

allow_mmengine_checkpoints()

__all__ = [
    'allow_mmengine_checkpoints', 'mmengine_checkpoint_globals', 'DeviceAwareRunner',
    'cpu_config_changes', 'retain_freed_cpu_memory'
]

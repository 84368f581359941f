"""The runner every config of the plugin uses (registered in mmengine's ``RUNNERS``)."""
from .device_aware_runner import DeviceAwareRunner, cpu_config_changes

__all__ = ['DeviceAwareRunner', 'cpu_config_changes']

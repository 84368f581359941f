"""Utilities: argument checks, checkpoint and pickle loading, safe file writing, CPU memory,
mmcv ops on CUDA without a CUDA build of mmcv."""
from .checkpoint_compat import allow_mmengine_checkpoints, mmengine_checkpoint_globals
from .cpu_memory import retain_freed_cpu_memory
from .torchvision_ops import route_cuda_ops_if_needed

allow_mmengine_checkpoints()

__all__ = [
    'allow_mmengine_checkpoints', 'mmengine_checkpoint_globals', 'retain_freed_cpu_memory',
    'route_cuda_ops_if_needed'
]

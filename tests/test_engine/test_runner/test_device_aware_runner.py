"""The CPU fallback of ``DeviceAwareRunner`` (config adaptation only; the runner itself runs
in the checkpoint and ``mim train`` tests)."""
from mmengine.config import ConfigDict

from mp3d_mmdet.engine import cpu_config_changes


def _gpu_cfg(**kwargs) -> ConfigDict:
    cfg = dict(
        optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic', dtype='float16',
                           optimizer=dict(type='SGD', lr=0.02)),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl')))
    cfg.update(kwargs)
    return ConfigDict(cfg)


def test_amp_swapped_for_plain_optim_wrapper():
    cfg = _gpu_cfg()
    changes = cpu_config_changes(cfg)
    assert cfg.optim_wrapper == dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02))
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.env_cfg.cudnn_benchmark is False
    assert 'model_wrapper_cfg' not in cfg  # single process: no DDP wrapper needed
    assert len(changes) == 2 and 'AmpOptimWrapper -> OptimWrapper' in changes[0]


def test_distributed_cpu_wrapper_and_idempotence():
    cfg = _gpu_cfg(launcher='pytorch',
                   model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                          find_unused_parameters=True))
    cpu_config_changes(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         find_unused_parameters=True, device_ids=None)
    assert cpu_config_changes(cfg) == []  # already CPU-safe: nothing more to change


def test_default_wrapper_created_for_launcher():
    cfg = _gpu_cfg(launcher='pytorch')
    cpu_config_changes(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         broadcast_buffers=False, device_ids=None)

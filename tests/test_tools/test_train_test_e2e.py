"""End to end through mmdet's own scripts (``mim train`` / ``mim test``) on generated
DeepLesion-format data: train, resume, evaluate with FROC, draw overlays, and a 2-process
CPU (gloo) run -- each in a subprocess, with a tiny MP3D FPN from the demo's config family."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config

from helpers.tiny_mp3d import tiny_mp3d_model
from mp3d_mmdet.synthetic import make_synthetic_deeplesion

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
BIN = osp.dirname(sys.executable)


def _tiny_config(data_root: str, work_dir: str, max_epochs: int) -> str:
    """A 64-px, 8-channel MP3D FPN inheriting the demo config (same code path, tiny sizes)."""
    return f"""
_base_ = {osp.join(REPO, 'configs', 'mp3d_fpn_synthetic_demo.py')!r}
data_root = {data_root!r}
work_dir = {work_dir!r}
{tiny_mp3d_model()}
train_pipeline = _base_.train_pipeline
train_pipeline[2].scales = [(56, 56), (64, 64)]
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = (64, 64)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
train_cfg = dict(max_epochs={max_epochs}, val_interval={max_epochs})
param_scheduler = [dict(type='MultiStepLR', begin=0, end={max_epochs}, by_epoch=True,
                        milestones=[1], gamma=0.1)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=3))
"""


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('deeplesion')
    make_synthetic_deeplesion(str(root), num_patients=4, seed=1, image_size=64,
                              progress=False)
    return str(root) + os.sep


def _mim(args, cwd, timeout=600) -> str:
    # One thread each: tiny models gain nothing from more, and CI may run beside other work.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([osp.join(BIN, 'mim'), *args], cwd=cwd, env=env,
                          capture_output=True, encoding='utf-8', errors='replace', timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


def _write_config(tmp_path, data_root, max_epochs, name='tiny.py'):
    work_dir = tmp_path / 'work'
    cfg = tmp_path / name
    cfg.write_text(_tiny_config(data_root, str(work_dir), max_epochs))
    return cfg, work_dir


def test_train_resume_test_and_overlays(tiny_data, tmp_path):
    # A 2-epoch run stopped after epoch 1 (the loop ends early; the schedule is the full one).
    cfg, work_dir = _write_config(tmp_path, tiny_data, max_epochs=2)
    out = _mim(['train', 'mmdet', str(cfg), '--cfg-options', 'train_cfg.max_epochs=1'],
               cwd=tmp_path)
    assert 'AmpOptimWrapper -> OptimWrapper' in out
    assert (work_dir / 'epoch_1.pth').is_file() and not (work_dir / 'epoch_2.pth').exists()
    iters_per_epoch = int(re.findall(r'Epoch\(train\) \[1\]\[\s*\d+/(\d+)\]', out)[-1])

    # Restarted with --resume it goes on from epoch 1's checkpoint: its iteration counter,
    # the lr after the milestone at epoch 1, and only epoch 2 is trained.
    out = _mim(['train', 'mmdet', str(cfg), '--resume'], cwd=tmp_path)
    assert re.search(rf'resumed epoch: 1, iter: {iters_per_epoch}\b', out), out[-3000:]
    assert 'Epoch(train) [1]' not in out and 'Epoch(train) [2]' in out
    base_lr = Config.fromfile(str(cfg)).optim_wrapper.optimizer.lr
    lrs = [float(v) for v in re.findall(r'Epoch\(train\) \[2\].*?lr: ([0-9.e+-]+)', out)]
    assert lrs and lrs == pytest.approx([base_lr / 10] * len(lrs))  # after the epoch-1 step
    assert (work_dir / 'epoch_2.pth').is_file()
    cfg2 = cfg

    # Test with the FROC metric, dump predictions, draw overlays from them.
    pred_file = tmp_path / 'predictions.pkl'
    out = _mim(['test', 'mmdet', str(cfg2), '--checkpoint', str(work_dir / 'epoch_2.pth'),
                '--out', str(pred_file)], cwd=tmp_path)
    for key in ('froc/sens@0.5', 'froc/sens@1', 'froc/sens@16', 'froc/mAP@0.5'):
        assert key in out, out[-3000:]
    overlays = tmp_path / 'overlays'
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'draw_detections.py'),
                           str(pred_file), '--out-dir', str(overlays), '--num', '2',
                           '--score-thr', '0.0'], capture_output=True,
                          encoding='utf-8', errors='replace')
    assert proc.returncode == 0, proc.stderr
    from mmengine.fileio import load
    with_gt = [r for r in load(str(pred_file)) if r['instances']]
    pngs = sorted(overlays.glob('*.png'))
    assert len(pngs) == min(2, len(with_gt)) >= 1
    assert all(p.stat().st_size > 1000 for p in pngs)


def test_two_cpu_processes_with_gloo(tiny_data, tmp_path):
    cfg, work_dir = _write_config(tmp_path, tiny_data, max_epochs=1)
    out = _mim(['train', 'mmdet', str(cfg), '--launcher', 'pytorch', '--gpus', '2'],
               cwd=tmp_path)
    assert 'env_cfg.dist_cfg.backend: nccl -> gloo' in out
    assert re.search(r'world_size: 2\b', out) or 'Distributed training: True' in out
    assert (work_dir / 'epoch_1.pth').is_file()
    # Validation ran at the end of the epoch in both processes and was gathered.
    assert 'froc/sens@1' in out

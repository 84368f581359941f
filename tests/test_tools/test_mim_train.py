"""The real user path: ``mim train mmdet CONFIG`` / ``mim test`` in a subprocess, with the plugin
imported only through ``custom_imports`` (so it must be pip-installed)."""
import os
import os.path as osp
import subprocess
import sys

from tiny_coco import tiny_faster_rcnn_config, write_tiny_coco

MIM = osp.join(osp.dirname(sys.executable), 'mim')


def _run(args, cwd) -> str:
    # One thread each: tiny models gain nothing from more, and CI may run beside other work.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    proc = subprocess.run([MIM, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_mim_train_then_test_with_checkpoint(tmp_path):
    data = write_tiny_coco(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    cfg = tmp_path / 'tiny_faster_rcnn.py'
    cfg.write_text(tiny_faster_rcnn_config(data['data_root'], str(work_dir), max_iters=1))

    out = _run(['train', 'mmdet', str(cfg)], cwd=tmp_path)
    # The CPU fallback logged its change, and the one iteration was checkpointed.
    assert 'AmpOptimWrapper -> OptimWrapper' in out
    assert (work_dir / 'iter_1.pth').is_file()

    out = _run(['test', 'mmdet', str(cfg), '--checkpoint', str(work_dir / 'iter_1.pth')],
               cwd=tmp_path)
    assert 'Load checkpoint from' in out
    assert 'coco/bbox_mAP' in out

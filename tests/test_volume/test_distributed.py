"""A batch shared by two processes under torchrun (gloo on the CPU): the results file is the
one a single process writes, and a run interrupted in one process resumes with one process to
that same file. Every process computes with one thread, as torchrun's (float32 sums in
another order could differ in the last bit)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from helpers.volume_fixtures import write_small_volume, write_tiny_model
from mp3d_mmdet.cli import detect_volumes
from mp3d_mmdet.volume import RESULTS_FILE_NAME, part_file_name, read_volume_detections

DRIVER = osp.join(osp.dirname(osp.abspath(__file__)), 'distributed_driver.py')
NAMES = [f'case{i}' for i in range(5)]


@pytest.fixture(scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def batch(tmp_path_factory, one_thread):
    """A list of 5 small volumes, the tiny model, and the reference: one process's file."""
    root = tmp_path_factory.mktemp('distributed')
    cfg, ckpt = write_tiny_model(str(root))
    listing = root / 'volumes.txt'
    listing.write_text(''.join(write_small_volume(str(root / f'{name}.nii.gz')) + '\n'
                               for name in NAMES))
    args = ['--list', str(listing), '--config', cfg, '--checkpoint', ckpt, '--score-thr',
            '0.0', '--precision', 'fp32', '--no-progress']
    assert detect_volumes.main(args + ['--out', str(root / 'one')]) == 0
    return args, (root / 'one' / RESULTS_FILE_NAME).read_bytes()


def torchrun(args, out, **env):
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc-per-node', '2', DRIVER] + args + ['--out', str(out), '--launcher',
                                                          'pytorch']
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **env))


def test_two_processes_write_the_one_process_file(batch, tmp_path):
    args, reference = batch
    done = torchrun(args, tmp_path / 'two')
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / 'two' / RESULTS_FILE_NAME).read_bytes() == reference
    assert sorted(os.listdir(tmp_path / 'two')) == [RESULTS_FILE_NAME]  # parts merged
    assert done.stdout.count('5 volume(s) detected, 0 already done') == 1  # rank 0 only


def test_interrupted_in_one_process_resumes_with_one_process(batch, tmp_path):
    args, reference = batch
    out = tmp_path / 'two'
    stopped = torchrun(args, out, MP3D_TEST_STOP_RANK='1')
    assert stopped.returncode != 0
    # process 1 finished its first volume (case1) and was stopped in its second (case3)
    _, part = read_volume_detections(str(out / part_file_name(1)))
    assert list(part) == ['case1']
    assert not osp.exists(out / RESULTS_FILE_NAME) or \
        'case3' not in read_volume_detections(str(out / RESULTS_FILE_NAME))[1]
    assert detect_volumes.main(args + ['--out', str(out)]) == 0
    assert (out / RESULTS_FILE_NAME).read_bytes() == reference
    assert sorted(os.listdir(out)) == [RESULTS_FILE_NAME]

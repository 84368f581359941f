"""A batch shared by two processes under torchrun (gloo on the CPU): the results file is the
one a single process writes; a run interrupted in one process resumes with one process to
that same file; a process that fails leaves the other's volumes done and every process names
the missing ones; a results file of other settings, refused by process 0, stops every process.
Every process computes with one thread, as torchrun's (float32 sums in another order could
differ in the last bit). Four volumes: process 0 takes case0 and case2, process 1 case1 and
case3; one torchrun start per test."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from helpers.volume_fixtures import write_small_volume, write_tiny_model
from mp3d_mmdet.cli import detect_volumes
from mp3d_mmdet.volume import RESULTS_FILE_NAME, part_file_name, read_volume_detections

PROG = 'mp3d-detect-volumes'
DRIVER = osp.join(osp.dirname(osp.abspath(__file__)), 'distributed_driver.py')
NAMES = [f'case{i}' for i in range(4)]


@pytest.fixture(scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def batch(tmp_path_factory, one_thread):
    """A list of 4 small volumes, the tiny model, and the reference: one process's file."""
    root = tmp_path_factory.mktemp('distributed')
    cfg, ckpt = write_tiny_model(str(root))
    listing = root / 'volumes.txt'
    listing.write_text(''.join(write_small_volume(str(root / f'{name}.nii.gz')) + '\n'
                               for name in NAMES))
    args = ['--list', str(listing), '--config', cfg, '--checkpoint', ckpt, '--score-thr',
            '0.0', '--precision', 'fp32', '--no-progress']
    assert detect_volumes.main(args + ['--out', str(root / 'one')]) == 0
    return args, root / 'one' / RESULTS_FILE_NAME


def torchrun(args, out, statuses=None, **env):
    """Two processes of the driver; ``statuses``: a folder where each writes its exit
    status."""
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc-per-node', '2', DRIVER] + args + ['--out', str(out), '--launcher',
                                                          'pytorch']
    if statuses is not None:
        statuses.mkdir()
        env['MP3D_TEST_STATUS_DIR'] = str(statuses)
    return subprocess.run(command, capture_output=True, encoding='utf-8', errors='replace',
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1', **env))


def _exit_statuses(folder):
    return {name: (folder / name).read_text() for name in sorted(os.listdir(folder))}


def _error_lines(stderr):
    """The command's error lines in the processes' stderr (two processes' lines written at
    the same time may run into one line of the pipe)."""
    marker = f'{PROG}: error: '
    return [marker + text.split('\n')[0] for text in stderr.split(marker)[1:]]


def test_two_processes_write_the_one_process_file(batch, tmp_path):
    args, reference = batch
    done = torchrun(args, tmp_path / 'two')
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / 'two' / RESULTS_FILE_NAME).read_bytes() == reference.read_bytes()
    assert sorted(os.listdir(tmp_path / 'two')) == [RESULTS_FILE_NAME]  # parts merged
    assert done.stdout.count('4 volume(s) detected, 0 already done') == 1  # rank 0 only


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
    assert (out / RESULTS_FILE_NAME).read_bytes() == reference.read_bytes()
    assert sorted(os.listdir(out)) == [RESULTS_FILE_NAME]


def test_a_failing_process_leaves_the_others_volumes_and_names_the_missing(batch, tmp_path,
                                                                           capsys):
    args, reference = batch
    out = tmp_path / 'two'
    failed = torchrun(args, out, tmp_path / 'statuses', MP3D_TEST_STOP_RANK='1',
                      MP3D_TEST_STOP_WITH='error')
    assert failed.returncode != 0
    assert _exit_statuses(tmp_path / 'statuses') == {'status-0': '1', 'status-1': '1'}
    line = (f'{PROG}: error: process 1: RuntimeError: device lost (second line of the '
            'message); 1 volume(s) not detected (case3): rerun the same command to complete '
            'them')
    assert _error_lines(failed.stderr) == [line, line], failed.stderr[-3000:]
    # process 0's volumes and process 1's first are in the results file, in input order
    _, records = read_volume_detections(str(out / RESULTS_FILE_NAME))
    assert list(records) == ['case0', 'case1', 'case2']
    assert sorted(os.listdir(out)) == [RESULTS_FILE_NAME]

    assert detect_volumes.main(args + ['--out', str(out)]) == 0
    assert '1 volume(s) detected, 3 already done' in capsys.readouterr().out
    assert (out / RESULTS_FILE_NAME).read_bytes() == reference.read_bytes()


def test_other_settings_refused_by_process_0_stop_every_process(batch, tmp_path):
    args, reference = batch
    out = tmp_path / 'two'
    out.mkdir()
    shutil.copy(reference, out / RESULTS_FILE_NAME)
    refused = torchrun(args + ['--score-thr', '0.5'], out, tmp_path / 'statuses')
    assert refused.returncode != 0
    assert _exit_statuses(tmp_path / 'statuses') == {'status-0': '1', 'status-1': '1'}
    lines = _error_lines(refused.stderr)
    assert len(lines) == 2 and lines[0] == lines[1], refused.stderr[-3000:]
    assert lines[0].startswith(f'{PROG}: error: {out / RESULTS_FILE_NAME} holds the results '
                               'of 4 volume(s) made with other settings (score_thr')
    assert lines[0].endswith('pass --restart to start a new results file there (discarding '
                             'them), or choose another output folder')
    assert (out / RESULTS_FILE_NAME).read_bytes() == reference.read_bytes()
    assert sorted(os.listdir(out)) == [RESULTS_FILE_NAME]

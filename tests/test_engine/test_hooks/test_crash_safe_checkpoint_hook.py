"""CrashSafeCheckpointHook + DeviceAwareRunner: a run killed at any moment of a checkpoint
save resumes, for max_keep_ckpts=1 and for the best checkpoint -- and mmengine's own hook
does not (the first test shows the failure this hook exists for)."""
import os
import os.path as osp
import signal

import pytest
import torch
from mmengine.fileio import LocalBackend

from helpers.toy_runner import toy_runner, train_and_sigkill_while_writing
from mp3d_mmdet.engine.hooks import crash_safe_checkpoint_hook


class Crash(BaseException):
    """Stands for the process dying: no ``except Exception`` handler sees it."""


def _crash_while_writing(monkeypatch, name_part: str) -> None:
    """The write of a checkpoint file whose name contains ``name_part`` stops halfway."""
    original = LocalBackend.put

    def put(self, obj, filepath):
        if name_part in osp.basename(str(filepath)):
            original(self, obj[:len(obj) // 2], filepath)
            raise Crash()
        original(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)


def _last_checkpoint(work_dir) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as handle:
        return handle.read().strip()


def _assert_resumable(work_dir, expected_epoch: int, max_epochs: int = 3, **kwargs) -> None:
    """``last_checkpoint`` names a complete checkpoint of ``expected_epoch`` and a resumed
    run trains on from it to ``max_epochs``."""
    last = _last_checkpoint(work_dir)
    assert osp.isfile(last), f'last_checkpoint names a missing file {last}'
    assert torch.load(last, weights_only=True)['meta']['epoch'] == expected_epoch
    runner = toy_runner(work_dir, max_epochs, resume=True, **kwargs)
    runner.train()
    assert runner.epoch == max_epochs
    assert osp.isfile(osp.join(work_dir, f'epoch_{max_epochs}.pth'))


@pytest.mark.parametrize('hook', ['CheckpointHook', 'CrashSafeCheckpointHook'])
def test_killed_while_writing_with_max_keep_ckpts_1(tmp_path, monkeypatch, hook):
    toy_runner(tmp_path, max_epochs=1, hook=hook).train()
    _crash_while_writing(monkeypatch, 'epoch_2')
    with pytest.raises(Crash):
        toy_runner(tmp_path, max_epochs=3, resume=True, hook=hook).train()
    monkeypatch.undo()
    if hook == 'CheckpointHook':  # mmengine's order: the only good checkpoint is gone
        assert not (tmp_path / 'epoch_1.pth').exists()
        assert _last_checkpoint(tmp_path).endswith('epoch_1.pth')
        return
    assert (tmp_path / 'epoch_1.pth').is_file() and not (tmp_path / 'epoch_2.pth').exists()
    _assert_resumable(tmp_path, expected_epoch=1)
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == ['epoch_3.pth']


@pytest.mark.parametrize('crash_point, expected_epoch', [
    ('last_checkpoint', 1),  # new checkpoint complete, last_checkpoint not yet updated
    ('delete', 2),           # last_checkpoint updated, old checkpoint not yet deleted
])
def test_killed_between_the_steps_of_a_save(tmp_path, monkeypatch, crash_point, expected_epoch):
    toy_runner(tmp_path, max_epochs=1).train()

    def crash(*args, **kwargs):
        raise Crash()

    target = 'atomic_write' if crash_point == 'last_checkpoint' else '_delete'
    monkeypatch.setattr(crash_safe_checkpoint_hook, target, crash)
    with pytest.raises(Crash):
        toy_runner(tmp_path, max_epochs=3, resume=True).train()
    monkeypatch.undo()
    assert (tmp_path / 'epoch_1.pth').is_file() and (tmp_path / 'epoch_2.pth').is_file()
    _assert_resumable(tmp_path, expected_epoch)


def test_a_checkpoint_is_never_left_truncated_under_its_name(tmp_path, monkeypatch):
    toy_runner(tmp_path, max_epochs=1, max_keep_ckpts=3).train()
    _crash_while_writing(monkeypatch, 'epoch_2')
    with pytest.raises(Crash):
        toy_runner(tmp_path, max_epochs=2, max_keep_ckpts=3, resume=True).train()
    assert not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / '.epoch_2.pth.partial').is_file()  # the hidden, incomplete write


def test_previous_best_survives_a_crash_while_the_new_best_is_written(tmp_path, monkeypatch):
    toy_runner(tmp_path, max_epochs=1, save_best='score').train()
    assert (tmp_path / 'best_score_epoch_1.pth').is_file()
    # resumed, the metric restarts at 1 (no new best at epoch 2): epoch 3 is the next best
    _crash_while_writing(monkeypatch, 'best_score_epoch_3')
    with pytest.raises(Crash):
        toy_runner(tmp_path, max_epochs=3, resume=True, save_best='score').train()
    monkeypatch.undo()
    assert (tmp_path / 'best_score_epoch_1.pth').is_file()
    # without a crash the previous best goes once the new one is written
    toy_runner(tmp_path / 'clean', max_epochs=2, save_best='score').train()
    assert sorted(p for p in os.listdir(tmp_path / 'clean') if p.startswith('best')) == [
        'best_score_epoch_2.pth']


def test_sigkill_while_writing_then_resume(tmp_path):
    proc = train_and_sigkill_while_writing(tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (tmp_path / 'epoch_1.pth').is_file()
    _assert_resumable(tmp_path, expected_epoch=1)

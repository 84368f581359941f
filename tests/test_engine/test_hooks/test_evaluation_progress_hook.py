"""EvaluationProgressHook: a bar over the validation and test loops, counting images."""
import io
from types import SimpleNamespace

import pytest

from helpers.toy_runner import toy_runner
from mp3d_mmdet.engine.hooks import EvaluationProgressHook, evaluation_progress_hook


def test_the_bar_counts_every_validation_and_test_image(tmp_path, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(evaluation_progress_hook.sys, 'stderr', stream)
    runner = toy_runner(tmp_path, max_epochs=1, save_best='score')
    runner.register_hook(EvaluationProgressHook(mininterval=0))
    runner.train()
    text = stream.getvalue()
    assert 'validation: 100%' in text and '4/4' in text  # the toy set: 4 images
    # the test loop the same way (the toy runner has no test loop of its own); in a
    # distributed run the bar counts this process's share (its sampler's length)
    hook = EvaluationProgressHook(mininterval=0)
    hook.before_test_epoch(SimpleNamespace(
        test_dataloader=SimpleNamespace(dataset=[0] * 7, sampler=[0] * 3)))
    for _ in range(3):
        hook.after_test_iter(None, 0, dict(data_samples=[0]))
    hook.after_test_epoch(None)
    assert 'test: 100%' in stream.getvalue() and '3/3' in stream.getvalue()


@pytest.mark.parametrize('batch, expected', [(dict(data_samples=[1, 2, 3]), 3), ([1], 1)])
def test_a_step_counts_the_samples_of_a_batch(batch, expected):
    hook = EvaluationProgressHook(mininterval=0)
    hook._start(10, 'validation')
    hook._step(batch)
    assert hook._bar.n == expected
    hook._close()
    assert hook._bar is None


def test_a_sampler_without_length_counts_the_dataset():
    hook = EvaluationProgressHook(mininterval=0)
    hook.before_val_epoch(SimpleNamespace(
        val_dataloader=SimpleNamespace(dataset=[0] * 5, sampler=iter([]))))
    assert hook._bar.total == 5
    hook._close()

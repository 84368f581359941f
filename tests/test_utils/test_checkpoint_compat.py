"""torch>=2.6 ``weights_only`` loading of mmengine checkpoints, and resume through the Runner."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

import mp3d_mmdet  # noqa: F401  (registers + allow-lists)
from helpers.tiny_coco import tiny_faster_rcnn_config, write_tiny_coco
from mp3d_mmdet.utils import allow_mmengine_checkpoints, mmengine_checkpoint_globals


def _runner(tmp_path, max_iters: int, resume: bool = False) -> Runner:
    data = write_tiny_coco(tmp_path / 'data')
    cfg_file = tmp_path / f'tiny_{max_iters}.py'
    cfg_file.write_text(tiny_faster_rcnn_config(data['data_root'], str(tmp_path / 'work'),
                                                max_iters=max_iters))
    cfg = Config.fromfile(str(cfg_file))
    cfg.resume = resume
    cfg.experiment_name = f'tiny_{max_iters}_{int(resume)}'
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


def test_allow_list_is_narrow():
    names = {getattr(obj, '__name__', str(obj)) for obj in mmengine_checkpoint_globals()}
    assert 'HistoryBuffer' in names and '_reconstruct' in names
    # Only data containers and numpy reconstruction helpers: nothing callable like eval/exec.
    assert not names & {'eval', 'exec', 'getattr', 'system', 'Popen'}
    assert allow_mmengine_checkpoints() is True


def test_checkpoint_loads_with_weights_only_and_resume_continues(tmp_path):
    runner = _runner(tmp_path, max_iters=2)
    runner.train()
    ckpt_path = tmp_path / 'work' / 'iter_2.pth'
    assert ckpt_path.is_file()

    # The plain torch>=2.6 default, as mmengine's loader calls it, must accept the file.
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 2
    assert 'message_hub' in ckpt and 'param_schedulers' in ckpt

    # Resume: a 3-iteration run picks up at iteration 2 with the saved weights and lr state.
    resumed = _runner(tmp_path, max_iters=3, resume=True)
    resumed._train_loop = resumed.build_train_loop(resumed._train_loop)
    resumed.optim_wrapper = resumed.build_optim_wrapper(resumed.optim_wrapper)
    resumed.param_schedulers = resumed.build_param_scheduler(resumed.param_schedulers)
    resumed.load_or_resume()
    assert resumed.iter == 2
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, ckpt['state_dict'][name], msg=name)
    # MultiStepLR milestone at iteration 1 with gamma 0.1: resumed lr is 0.001, not 0.01.
    assert resumed.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.001)
    resumed.train()
    assert resumed.iter == 3
    assert (tmp_path / 'work' / 'iter_3.pth').is_file()


def test_load_checkpoint_api_uses_weights_only_default(tmp_path):
    runner = _runner(tmp_path, max_iters=1)
    runner.train()
    model = runner.model
    # mmengine's own load_checkpoint (what `mim test --checkpoint` calls) works unchanged.
    ckpt = load_checkpoint(model, str(tmp_path / 'work' / 'iter_1.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 1


def test_history_buffer_round_trip_without_getattr(tmp_path):
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    for value in (1.0, 2.0, 6.0):
        buffer.update(value)
    torch.save({'buffer': buffer}, tmp_path / 'hb.pth')
    loaded = torch.load(tmp_path / 'hb.pth', weights_only=True)['buffer']
    assert loaded.mean() == pytest.approx(3.0)
    assert loaded.max() == 6.0 and loaded.current() == 6.0
    # The getattr-free state: no pickled statistics functions at all.
    assert 'statistics_methods' not in buffer.__getstate__()


def test_other_globals_stay_forbidden(tmp_path):
    import fractions
    torch.save({'x': fractions.Fraction(1, 3)}, tmp_path / 'bad.pth')
    with pytest.raises(Exception, match='Unsupported global'):
        torch.load(tmp_path / 'bad.pth', weights_only=True)

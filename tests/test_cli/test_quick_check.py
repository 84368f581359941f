"""mp3d-quick-check: a paper config's full-size model through its real runner, tiny work."""
import os
import re

import pytest

from helpers.tiny_coco import tiny_coco_2017
from mp3d_mmdet.cli import quick_check

MAIN = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'mp3d_fpn_deeplesion_2x.py')


def test_the_paper_config_trains_and_validates(tmp_path, capsys):
    work = tmp_path / 'qc'
    code = quick_check.main([MAIN, '--work-dir', str(work), '--iters', '1', '--val-images', '1',
                             '--scale', '64', '--cfg-options', 'num_slices=13'])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert re.search(r'mp3d-quick-check: mp3d_fpn_deeplesion_2x: 1 training iterations and '
                     r'validation on 1 images at 64 px ran in \d+ s', out.out)
    assert (work / 'epoch_1.pth').is_file() and (work / '.mp3d_quick_check').is_file()
    small = quick_check.quick_check_config(
        quick_check.load_config(MAIN, {'num_slices': 13}), str(work), None, 1, 1, 64)
    assert small.model.backbone.num_slices == 13  # the model is the config's, at full size
    assert small.model.backbone.get('base_channels', 64) == 64
    assert small.train_dataloader.dataset.pipeline[2].scales == [(64, 64)]
    assert small.test_dataloader.dataset.pipeline[1].scale == (64, 64)
    # a second check reuses the folder; a folder of something else is refused
    other = tmp_path / 'training_run'
    other.mkdir()
    (other / 'epoch_1.pth').write_bytes(b'precious')
    assert quick_check.main([MAIN, '--work-dir', str(other)]) == 1
    assert 'is not empty and not a quick check' in capsys.readouterr().err
    assert (other / 'epoch_1.pth').read_bytes() == b'precious'


def test_other_datasets_need_a_data_root(tmp_path, capsys):
    coco = MAIN.replace('mp3d_fpn_deeplesion_2x.py', 'mp3d_fpn_coco_pretrain_3slice_6x.py')
    assert quick_check.main([coco, '--work-dir', str(tmp_path / 'c')]) == 1
    assert "reads ['CocoDataset'] data: pass --data-root" in capsys.readouterr().err


@pytest.mark.parametrize('args,message', [(['--iters', '0'], '--iters and --val-images'),
                                          (['--scale', '16'], '--scale >= 32')])
def test_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit):
        quick_check.parse_args([MAIN] + args)
    assert message in capsys.readouterr().err


def test_coco_config_reads_the_data_root_everywhere(tmp_path, capsys, monkeypatch):
    """--data-root reaches the datasets and what the config derives from COCO_ROOT (the
    evaluator's annotation file); the variable is restored afterwards."""
    monkeypatch.setenv('COCO_ROOT', str(tmp_path / 'elsewhere'))
    coco = MAIN.replace('mp3d_fpn_deeplesion_2x.py', 'mp3d_fpn_coco_pretrain_3slice_6x.py')
    root = tiny_coco_2017(tmp_path / 'coco')
    work = tmp_path / 'c'
    code = quick_check.main([coco, '--work-dir', str(work), '--data-root', root, '--iters', '1',
                             '--val-images', '1', '--scale', '64'])
    assert code == 0, capsys.readouterr().err[-3000:]
    (log, ) = work.glob('*/*.log')
    assert 'Evaluating bbox...' in log.read_text()  # CocoMetric read the annotation file
    assert os.environ['COCO_ROOT'] == str(tmp_path / 'elsewhere')

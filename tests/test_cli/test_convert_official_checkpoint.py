"""mp3d-convert-official-checkpoint (and its script under tools/model_converters/): the
command on official MP3D weights (every key and shape of the authors' 3-slice / 80-class
layout, random values)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mp3d_mmdet.cli import convert_official_checkpoint

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
LAYOUTS = osp.join(REPO, 'tests', 'test_converters', 'official_mp3d_state_dict.json')
PROG = 'mp3d-convert-official-checkpoint'


@pytest.fixture(scope='module')
def official_checkpoint(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    layout = json.load(open(LAYOUTS))['3_slices_80_classes']
    path = tmp_path_factory.mktemp('official') / 'mp3d63.pth'
    torch.save({'state_dict': {key: torch.randn(shape, generator=g) for key, shape in layout}},
               str(path))
    return str(path)


def test_converts_and_prints_the_header_and_the_table(official_checkpoint, tmp_path, capsys):
    dst = tmp_path / 'sub' / 'out.pth'
    assert convert_official_checkpoint.main([official_checkpoint, str(dst), '--num-slices', '5',
                                             '--num-classes', '1']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f'{official_checkpoint}: official MP3D, GTM slices [3, 3, 3, 3], '
                      f'80 classes -> {dst}: 5 slices')
    assert out[-1].startswith('total: 193 renamed, 40 carried, 4 adapted')
    state = torch.load(str(dst), weights_only=True)['state_dict']
    assert tuple(state['neck.0.convs.0.weight'].shape[:2]) == (256, 5)


@pytest.mark.parametrize('args,message', [
    (['missing.pth', 'o.pth'], 'file not found: '),
    (['{src}', 'o.pth', '--num-slices', '4'], 'num_slices'),
])
def test_errors_are_one_line_and_nothing_is_written(official_checkpoint, tmp_path, capsys,
                                                    args, message):
    args = [official_checkpoint if a == '{src}' else
            (str(tmp_path / a) if a.endswith('.pth') else a) for a in args]
    assert convert_official_checkpoint.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'{PROG}: error: ') and err.count('\n') == 1 and message in err
    assert not (tmp_path / 'o.pth').exists()


def test_script_from_a_checkout_bad_arguments_exit_2():
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'model_converters',
                                                    'convert_official_checkpoint.py'),
                           'only-src.pth'], capture_output=True, encoding='utf-8', timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f'usage: {PROG} ')


def test_destination_replaces_only_a_converted_checkpoint(official_checkpoint, tmp_path,
                                                          capsys):
    """An unrelated file or a folder at DST is refused in one line and kept byte for byte;
    a checkpoint a converter wrote is replaced."""
    unrelated, folder = tmp_path / 'notes.pth', tmp_path / 'folder.pth'
    unrelated.write_bytes(b'my own weights')
    folder.mkdir()
    for dst, message in [(unrelated, 'exists and was not written by a checkpoint converter'),
                         (folder, 'is a folder; give a file name')]:
        assert convert_official_checkpoint.main([official_checkpoint, str(dst)]) == 1
        err = capsys.readouterr().err
        assert err == f'{PROG}: error: destination {dst} {message}' + err.split(message)[1]
        assert err.count('\n') == 1
    assert unrelated.read_bytes() == b'my own weights' and list(folder.iterdir()) == []
    converted = tmp_path / 'converted.pth'
    for num_slices in ('3', '5'):  # the second run replaces the first's output
        assert convert_official_checkpoint.main([official_checkpoint, str(converted),
                                                 '--num-slices', num_slices]) == 0
    state = torch.load(str(converted), weights_only=True)['state_dict']
    assert tuple(state['neck.0.convs.0.weight'].shape[:2]) == (256, 5)

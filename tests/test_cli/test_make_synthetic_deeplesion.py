"""mp3d-make-synthetic-deeplesion: the CLI writes the dataset and prints its summary."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from mp3d_mmdet.cli import make_synthetic_deeplesion
from mp3d_mmdet.datasets import DeepLesionDataset

SCRIPT = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'make_synthetic_deeplesion.py')


@pytest.fixture(scope='module')
def cli():
    return make_synthetic_deeplesion


def test_main_writes_a_loadable_dataset(cli, tmp_path, capsys):
    out = str(tmp_path / 'dl')
    assert cli.main(['--out', out, '--num-patients', '4', '--seed', '2', '--image-size', '48',
                     '--no-progress']) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[:printed.rindex('}') + 1])
    assert summary['num_patients'] == 4 and summary['large_image_size'] == 72
    assert f'to {out} in' in printed
    total = sum(len(DeepLesionDataset(data_root=out, split=split, exclude_noisy=False,
                                      pipeline=[]))
                for split in ('train', 'val', 'test'))
    assert total == summary['num_key_slices']


def test_bad_arguments_exit_with_a_message(cli, tmp_path, capsys):
    assert cli.main(['--out', str(tmp_path / 'x'), '--num-patients', '2']) == 1
    assert 'error: num_patients must be >= 3' in capsys.readouterr().err


def test_runs_as_a_script(tmp_path):
    out = str(tmp_path / 'dl')
    done = subprocess.run([sys.executable, SCRIPT, '--out', out, '--num-patients', '3',
                           '--image-size', '32', '--no-progress'],
                          capture_output=True, encoding='utf-8', errors='replace', timeout=300)
    assert done.returncode == 0, done.stderr
    assert osp.isfile(osp.join(out, 'DL_info.csv'))
    assert '"num_patients": 3' in done.stdout


def test_demo_preset_and_explicit_options_override_it(cli):
    args = cli.parse_args(['--out', 'x', '--preset', 'demo'])
    assert (args.num_patients, args.image_size, tuple(args.lesion_diameter_mm),
            args.vessel_max_diameter_mm) == (60, 160, (15.0, 45.0), 25.0)
    args = cli.parse_args(['--out', 'x', '--preset', 'demo', '--num-patients', '5'])
    assert (args.num_patients, args.image_size) == (5, 160)
    args = cli.parse_args(['--out', 'x'])
    assert (args.num_patients, args.image_size) == (12, 512)  # no preset: the defaults


def _tiny(out, *extra):
    return ['--out', out, '--num-patients', '3', '--image-size', '32', '--no-progress',
            '--reuse', *extra]


def test_reuse_keeps_the_same_recipe_and_replaces_another(cli, tmp_path, capsys, monkeypatch):
    from mp3d_mmdet import synthetic
    out = str(tmp_path / 'dl')
    csv = osp.join(out, 'DL_info.csv')
    assert cli.main(_tiny(out)) == 0
    recipe = synthetic.read_synthetic_recipe(out)
    assert recipe == synthetic.synthetic_recipe(num_patients=3, image_size=32)
    assert len(recipe['generator_sha256']) == 64
    written = osp.getmtime(csv)
    capsys.readouterr()

    assert cli.main(_tiny(out)) == 0  # same options, same generator: untouched
    assert 'reusing' in capsys.readouterr().out and osp.getmtime(csv) == written

    first = open(csv).read()
    assert cli.main(_tiny(out, '--seed', '1')) == 0  # another seed: written anew
    assert 'differs in: seed' in capsys.readouterr().out
    assert open(csv).read() != first and synthetic.read_synthetic_recipe(out)['seed'] == 1

    # a changed generator (another source digest) makes the folder stale too
    monkeypatch.setattr(cli, 'synthetic_recipe',
                        lambda **kw: dict(synthetic.synthetic_recipe(**kw), generator_sha256='x'))
    assert cli.main(_tiny(out, '--seed', '1')) == 0
    assert 'differs in: generator_sha256' in capsys.readouterr().out


def test_reuse_refuses_data_it_did_not_write(cli, tmp_path, capsys):
    out = tmp_path / 'dl'
    out.mkdir()
    (out / 'DL_info.csv').write_text('File_name\n')
    assert cli.main(_tiny(str(out))) == 1
    assert f'error: {out} holds a data set without synthetic_recipe.json' in \
        capsys.readouterr().err
    assert (out / 'DL_info.csv').read_text() == 'File_name\n'

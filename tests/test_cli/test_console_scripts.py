"""Every CLI module is installed as the console command it names itself, and runs from a
checkout as ``tools/...py``."""
import os.path as osp
import pkgutil
import subprocess
import sys
from importlib import import_module
from importlib.metadata import distribution

import mp3d_mmdet.cli

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WRAPPER_FOLDERS = {'convert_pretraining_checkpoint': 'tools/model_converters',
                   'official_mp3d': 'tools/model_converters'}


def cli_modules():
    return sorted(m.name for m in pkgutil.iter_modules(mp3d_mmdet.cli.__path__))


def test_each_cli_module_is_a_console_script_named_by_its_prog():
    scripts = {ep.name: ep.value for ep in distribution('mp3d_mmdet').entry_points
               if ep.group == 'console_scripts'}
    expected = {}
    for name in cli_modules():
        module = import_module(f'mp3d_mmdet.cli.{name}')
        assert callable(module.main) and module.PROG.startswith('mp3d-')
        expected[module.PROG] = f'mp3d_mmdet.cli.{name}:main'
        wrapper = osp.join(REPO, WRAPPER_FOLDERS.get(name, 'tools'), f'{name}.py')
        assert f"run_module('mp3d_mmdet.cli.{name}'" in open(wrapper).read(), wrapper
    assert scripts == expected
    assert len(expected) == 9


def test_installed_command_runs():
    command = osp.join(osp.dirname(sys.executable), 'mp3d-eval-froc')
    proc = subprocess.run([command, '--help'], capture_output=True, encoding='utf-8',
                          errors='replace', timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('usage: mp3d-eval-froc ')

"""Every command module of :mod:`mp3d_mmdet.cli` is the console command of its name in
setup.py, installed as such, listed in the package docstring, and runs from a checkout as
``tools/...py``."""
import ast
import os.path as osp
import pkgutil
import re
import subprocess
import sys
from importlib import import_module
from importlib.metadata import distribution
from typing import Dict

import mp3d_mmdet.cli

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: The modules of mp3d_mmdet.cli that are no command: what the commands share.
SHARED_MODULES = ('common', 'converter_command')
WRAPPER_FOLDERS = {'convert_pretraining_checkpoint': 'tools/model_converters',
                   'convert_official_checkpoint': 'tools/model_converters'}


def setup_console_scripts() -> Dict[str, str]:
    """command -> 'module:function' of the console_scripts in setup.py, in their order."""
    tree = ast.parse(open(osp.join(REPO, 'setup.py')).read())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, 'id', None) == 'setup')
    entry_points = next(k.value for k in call.keywords if k.arg == 'entry_points')
    scripts = [line.split('=') for line in ast.literal_eval(entry_points)['console_scripts']]
    return {name.strip(): target.strip() for name, target in scripts}


def command_modules():
    return sorted(m.name for m in pkgutil.iter_modules(mp3d_mmdet.cli.__path__)
                  if m.name not in SHARED_MODULES)


def test_each_command_module_is_the_setup_py_console_script_of_its_name():
    expected = {}
    for name in command_modules():
        module = import_module(f'mp3d_mmdet.cli.{name}')
        assert callable(module.main)
        assert module.PROG == 'mp3d-' + name.replace('_', '-')  # module named as its command
        expected[module.PROG] = f'mp3d_mmdet.cli.{name}:main'
        wrapper = osp.join(REPO, WRAPPER_FOLDERS.get(name, 'tools'), f'{name}.py')
        assert f"run_module('mp3d_mmdet.cli.{name}'" in open(wrapper).read(), wrapper
    assert setup_console_scripts() == expected
    assert len(expected) == 9


def test_the_installed_commands_are_those_of_setup_py():
    installed = {ep.name: ep.value for ep in distribution('mp3d_mmdet').entry_points
                 if ep.group == 'console_scripts'}
    assert installed == setup_console_scripts(), 'stale install: pip install -e . again'


def test_the_package_docstring_lists_exactly_the_commands_of_setup_py():
    listed = re.findall(r'^``(mp3d-[a-z0-9-]+)``', mp3d_mmdet.cli.__doc__, flags=re.M)
    assert listed == list(setup_console_scripts())


def test_installed_command_runs():
    command = osp.join(osp.dirname(sys.executable), 'mp3d-eval-froc')
    proc = subprocess.run([command, '--help'], capture_output=True, encoding='utf-8',
                          errors='replace', timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('usage: mp3d-eval-froc ')

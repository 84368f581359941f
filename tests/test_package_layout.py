"""The package's map holds: imports run one way (the ground floor imports nothing above it,
the volume wing is layered io -> inference -> outputs -> batch), no module grows past 500
lines, the HTML report's assets are package data, and tools/ never imports from tests/."""
import ast
import fnmatch
import os
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(REPO, 'mp3d_mmdet')
MAX_MODULE_LINES = 500

#: subpackage -> the subpackages of mp3d_mmdet it must not import (directly or relatively)
FORBIDDEN = {
    'utils': ('models', 'datasets', 'evaluation', 'apis', 'volume', 'cli', 'engine',
              'converters', 'visualization', 'synthetic'),
    'structures': ('models', 'datasets', 'evaluation', 'apis', 'volume', 'cli', 'engine',
                   'converters', 'visualization', 'synthetic', 'utils'),
    'volume/io': ('volume/inference', 'volume/outputs', 'volume/inputs', 'volume/results_file',
                  'volume/batch', 'apis', 'cli'),
    'volume/inference': ('volume/outputs', 'volume/inputs', 'volume/results_file',
                         'volume/batch', 'apis', 'cli'),
    'volume/outputs': ('volume/inputs', 'volume/results_file', 'volume/batch', 'apis', 'cli'),
}


def package_modules(sub: str = ''):
    root = osp.join(PACKAGE, sub)
    if osp.isfile(root + '.py'):
        yield root + '.py'
        return
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(folder, name)


def imported_modules(path: str):
    """Dotted names of the mp3d_mmdet modules a file imports, resolved to absolute paths
    (``mp3d_mmdet/volume/io``-style, without the package prefix)."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    here = osp.relpath(osp.dirname(path), REPO).split(os.sep)  # ['mp3d_mmdet', ...]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                module = (node.module or '').split('.') if node.module else []
                names = ['.'.join(base + module)]
                names += [f'{names[0]}.{alias.name}' for alias in node.names]
            else:
                names = [node.module or '']
        else:
            continue
        for name in names:
            if name == 'mp3d_mmdet' or name.startswith('mp3d_mmdet.'):
                yield name[len('mp3d_mmdet.'):].replace('.', '/')


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_imports_run_one_way(layer):
    offences = []
    for path in package_modules(layer):
        for target in imported_modules(path):
            for forbidden in FORBIDDEN[layer]:
                if target == forbidden or target.startswith(forbidden + '/'):
                    offences.append(f'{osp.relpath(path, REPO)} imports mp3d_mmdet/{target}')
    assert offences == []


def test_the_layout_check_resolves_relative_imports():
    linking = set(imported_modules(osp.join(PACKAGE, 'volume', 'inference', 'linking.py')))
    assert {'structures', 'volume/io/ct_volume'} <= linking


def test_no_module_over_the_size_limit():
    sizes = {osp.relpath(path, REPO): sum(1 for _ in open(path, encoding='utf-8'))
             for path in package_modules()}
    assert sizes and {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_html_assets_are_package_data():
    setup_text = open(osp.join(REPO, 'setup.py'), encoding='utf-8').read()
    patterns = re.search(r"'mp3d_mmdet\.volume\.outputs': \[([^\]]*)\]", setup_text)
    assert patterns, 'setup.py package_data has no entry for mp3d_mmdet.volume.outputs'
    globs = [g.strip().strip("'") for g in patterns.group(1).split(',') if g.strip()]
    folder = osp.join(PACKAGE, 'volume', 'outputs', 'templates')
    assets = sorted(os.listdir(folder))
    assert {'report.css', 'sortable.js', 'volume_viewer.js'} <= set(assets)
    assert [a for a in assets if not any(fnmatch.fnmatch(f'templates/{a}', g) for g in globs)] \
        == []


def test_tools_never_put_tests_on_the_import_path():
    offences = []
    for folder, subfolders, files in os.walk(osp.join(REPO, 'tools')):
        subfolders[:] = [name for name in subfolders if name != 'node_modules']
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                for line in open(path, encoding='utf-8'):
                    if 'sys.path' in line and 'tests' in line:
                        offences.append(f'{osp.relpath(path, REPO)}: {line.strip()}')
    assert offences == []

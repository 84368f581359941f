"""The recipe: the generator digest covers every module of the package, and the recipe file
round-trips."""
import hashlib
import os
import os.path as osp
import shutil

from mp3d_mmdet.synthetic import recipe as recipe_module
from mp3d_mmdet.synthetic import synthetic_recipe


def _package_copy(tmp_path, monkeypatch):
    """A copy of the package's modules that generator_digest reads instead."""
    package = osp.dirname(recipe_module.__file__)
    copy = tmp_path / 'synthetic'
    copy.mkdir()
    for name in os.listdir(package):
        if name.endswith('.py'):
            shutil.copy(osp.join(package, name), copy / name)
    monkeypatch.setattr(recipe_module, '__file__', str(copy / 'recipe.py'))
    return package, copy


def test_generator_digest_is_over_every_module(tmp_path, monkeypatch):
    package, copy = _package_copy(tmp_path, monkeypatch)
    modules = sorted(n for n in os.listdir(package) if n.endswith('.py'))
    assert {'anatomy.py', 'generator.py', 'placement.py', 'recipe.py'} <= set(modules)
    expected = hashlib.sha256(''.join(
        f'{name} {hashlib.sha256((copy / name).read_bytes()).hexdigest()}\n'
        for name in modules).encode()).hexdigest()
    original = recipe_module.generator_digest()
    assert original == expected
    (copy / 'notes.txt').write_text('not a module')
    assert recipe_module.generator_digest() == original
    for name in modules:  # a change to any module changes the digest
        source = (copy / name).read_bytes()
        (copy / name).write_bytes(source + b'\n')
        assert recipe_module.generator_digest() != original, name
        (copy / name).write_bytes(source)
    assert recipe_module.generator_digest() == original


def test_recipe_records_the_arguments_and_round_trips(tmp_path):
    recipe = synthetic_recipe(num_patients=3, image_size=32)
    assert recipe['num_patients'] == 3 and recipe['image_size'] == 32
    assert recipe['lesion_diameter_mm'] == [5.0, 40.0]  # the defaults, tuples as lists
    assert recipe['generator_sha256'] == recipe_module.generator_digest()
    assert 'out_dir' not in recipe and 'progress' not in recipe
    assert recipe_module.read_synthetic_recipe(str(tmp_path)) is None
    recipe_module.write_recipe(str(tmp_path / recipe_module.RECIPE_FILE), recipe)
    assert recipe_module.read_synthetic_recipe(str(tmp_path)) == recipe
    (tmp_path / recipe_module.RECIPE_FILE).write_text('[1, 2]')
    assert recipe_module.read_synthetic_recipe(str(tmp_path)) is None

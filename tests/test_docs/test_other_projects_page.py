"""docs/other_projects.md works as written: its configs, saved in a folder outside the
repository, train and test through `mim train` / `mim test` (tiny data; the plugin's runner
with the full-size model, mmengine's runner and mmdet's default packing with a tiny one), and
a test pipeline FROCMetric cannot read is refused before the first training iteration."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from helpers.tiny_mp3d import tiny_mp3d_model
from mp3d_mmdet.synthetic import make_synthetic_deeplesion
from mp3d_mmdet.utils.config import ConfigError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MIM = osp.join(osp.dirname(sys.executable), 'mim')
# what only the test changes: one epoch of 2 images at 64 px, no worker processes
SMALL = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
         'train_dataloader.batch_size=1', 'train_dataloader.dataset.pipeline.2.scale=(64,64)',
         'val_dataloader.dataset.pipeline.1.scale=(64,64)',
         'test_dataloader.dataset.pipeline.1.scale=(64,64)'] + [
    f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False', 'dataset.indices=2')]


def page_config(marker: str = 'other-project-config') -> str:
    text = open(osp.join(REPO, 'docs', 'other_projects.md')).read()
    match = re.search(rf'<!-- {marker} -->\n```python\n(.*?)```', text, re.S)
    assert match, f'the config block {marker} of docs/other_projects.md is gone'
    return match.group(1)


@pytest.fixture(scope='module')
def deeplesion(tmp_path_factory) -> str:
    """A tiny synthetic DeepLesion release (no trailing slash: the configs add it)."""
    data = str(tmp_path_factory.mktemp('data') / 'DeepLesion')
    make_synthetic_deeplesion(data, num_patients=3, seed=4, image_size=64, progress=False)
    return data


def _mim(args, cwd, data_root) -> str:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               DEEPLESION_ROOT=data_root)
    proc = subprocess.run([MIM, *args], cwd=cwd, env=env, capture_output=True,
                          encoding='utf-8', errors='replace',
                          timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_the_page_config_trains_and_tests_outside_the_repository(tmp_path, deeplesion):
    project = tmp_path / 'my_project'
    project.mkdir()
    (project / 'my_mp3d.py').write_text(page_config())
    data = deeplesion

    out = _mim(['train', 'mmdet', 'my_mp3d.py', '--cfg-options', *SMALL], project, data)
    assert 'places take their slice-input settings' in out  # num_slices = 7 reached them
    assert re.search(r'froc/sens@1: [0-9.]+', out)  # validation ran after the epoch
    checkpoint = project / 'work_dirs' / 'my_mp3d' / 'epoch_1.pth'
    assert checkpoint.is_file()

    out = _mim(['test', 'mmdet', 'my_mp3d.py', '--checkpoint', str(checkpoint),
                '--cfg-options', *SMALL], project, data)
    assert re.search(r'froc/mAP@0.5: [0-9.]+', out)


def _mmdet_defaults_project(tmp_path) -> str:
    """The page's config with mmdet's defaults, and a child of it shrinking the model."""
    project = tmp_path / 'my_project'
    project.mkdir()
    (project / 'my_mp3d.py').write_text(page_config('mmdet-defaults-config'))
    (project / 'my_tiny_mp3d.py').write_text("_base_ = './my_mp3d.py'\n" + tiny_mp3d_model())
    return str(project)


def test_mmdet_defaults_train_and_test_with_froc(tmp_path, deeplesion):
    project = _mmdet_defaults_project(tmp_path)
    out = _mim(['train', 'mmdet', 'my_tiny_mp3d.py', '--cfg-options', *SMALL], project,
               deeplesion)
    assert 'DeviceAwareRunner' not in out  # mmengine's runner
    assert re.search(r'froc/sens@1: [0-9.]+', out)  # validation read gt_instances
    assert 'no lesion has a type or size' in out  # the breakdowns said n/a, once
    checkpoint = osp.join(project, 'work_dirs', 'my_tiny_mp3d', 'epoch_1.pth')
    assert osp.isfile(checkpoint)

    out = _mim(['test', 'mmdet', 'my_tiny_mp3d.py', '--checkpoint', checkpoint,
                '--cfg-options', *SMALL], project, deeplesion)
    assert re.search(r'froc/mAP@0.5: [0-9.]+', out)


def test_annotations_loaded_before_the_resize_are_refused_before_training(
        tmp_path, deeplesion, monkeypatch):
    monkeypatch.setenv('DEEPLESION_ROOT', deeplesion)
    cfg = Config.fromfile(osp.join(_mmdet_defaults_project(tmp_path), 'my_tiny_mp3d.py'))
    cfg.merge_from_dict({f'{split}_dataloader.{key}': value for split in ('train', 'val')
                         for key, value in (('num_workers', 0), ('persistent_workers', False),
                                            ('dataset.indices', 2))})
    pipeline = cfg.val_dataloader.dataset.pipeline
    pipeline[1], pipeline[2] = pipeline[2], pipeline[1]  # LoadAnnotations, then the resize
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ConfigError, match=(
            r'boxes LoadAnnotations loads at val_dataloader.dataset.pipeline\[1\], but '
            r'val_dataloader.dataset.pipeline\[2\] \(SliceWiseResize\) comes after it')):
        runner.train()
    assert runner.iter == 0
    assert not [name for name in os.listdir(cfg.work_dir) if name.endswith('.pth')]

"""docs/other_projects.md works as written: its config, saved in a folder outside the
repository, trains and tests through `mim train` / `mim test` (full-size model, tiny data)."""
import os
import os.path as osp
import re
import subprocess
import sys

from mp3d_mmdet.synthetic import make_synthetic_deeplesion

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MIM = osp.join(osp.dirname(sys.executable), 'mim')
# what only the test changes: one epoch of 2 images at 64 px, no worker processes
SMALL = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
         'train_dataloader.batch_size=1', 'train_dataloader.dataset.pipeline.2.scale=(64,64)',
         'val_dataloader.dataset.pipeline.1.scale=(64,64)',
         'test_dataloader.dataset.pipeline.1.scale=(64,64)'] + [
    f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False', 'dataset.indices=2')]


def page_config() -> str:
    text = open(osp.join(REPO, 'docs', 'other_projects.md')).read()
    match = re.search(r'<!-- other-project-config -->\n```python\n(.*?)```', text, re.S)
    assert match, 'the config block of docs/other_projects.md is gone'
    return match.group(1)


def _mim(args, cwd, data_root) -> str:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               DEEPLESION_ROOT=data_root)
    proc = subprocess.run([MIM, *args], cwd=cwd, env=env, capture_output=True,
                          encoding='utf-8', errors='replace',
                          timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_the_page_config_trains_and_tests_outside_the_repository(tmp_path):
    project = tmp_path / 'my_project'
    project.mkdir()
    (project / 'my_mp3d.py').write_text(page_config())
    data = str(tmp_path / 'DeepLesion')  # no trailing slash: the config adds it
    make_synthetic_deeplesion(data, num_patients=3, seed=4, image_size=64, progress=False)

    out = _mim(['train', 'mmdet', 'my_mp3d.py', '--cfg-options', *SMALL], project, data)
    assert 'places take their slice-input settings' in out  # num_slices = 7 reached them
    assert re.search(r'froc/sens@1: [0-9.]+', out)  # validation ran after the epoch
    checkpoint = project / 'work_dirs' / 'my_mp3d' / 'epoch_1.pth'
    assert checkpoint.is_file()

    out = _mim(['test', 'mmdet', 'my_mp3d.py', '--checkpoint', str(checkpoint),
                '--cfg-options', *SMALL], project, data)
    assert re.search(r'froc/mAP@0.5: [0-9.]+', out)

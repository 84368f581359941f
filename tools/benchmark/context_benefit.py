#!/usr/bin/env python
"""Does 3D context help? The demo's MP3D FPN against a 2D detector that sees only the key slice.

Trains each model with the same budget (the demo's schedule) on the same synthetic
DeepLesion-format set, through ``mim train`` / ``mim test`` like a user would, evaluates each
with the FROC metric and prints one table. The synthetic data contain vessel-like tubes that
look exactly like the lesions of their size on any single slice and differ only along z, so a
detector without 3D context should pay for them in false positives.

    python tools/benchmark/context_benefit.py                 # MP3D (9 slices) vs 2D (1 slice)
    python tools/benchmark/context_benefit.py --with-3dce     # + FPN+3DCE with 9 slices

Models (all share the demo's FPN width, heads, input scale, schedule and seed):

* ``mp3d_9slices``: ``configs/mp3d_fpn_synthetic_demo.py`` as is;
* ``2d_key_slice``: mmdet's 2D ResNet-50 layout at the same base width (16) and group norm,
  one input channel: the key slice alone (``num_slices = 1``);
* ``3dce_9slices``: ``ResNet3DCE`` over 3 groups of 3 slices with the same 2D ResNet.

Data: the demo's set in ``work_dirs/demo/data`` (``make_synthetic_deeplesion.py --preset demo
--reuse``, as ``tools/demo.sh`` runs it: kept when its recipe matches, written anew
otherwise). Work dirs: ``work_dirs/context_benefit/<model>``; the table gives each model's
wall-clock minutes.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO_CONFIG = 'configs/mp3d_fpn_synthetic_demo.py'
BIN = osp.dirname(sys.executable)

#: The 2D ResNet shared by the 2D baseline and 3DCE: mmdet's ResNet-50 at the demo's width.
_RESNET_2D = ("dict(type='ResNet', depth=50, base_channels=16, out_indices=(0, 1, 2, 3), "
              "frozen_stages=-1, norm_cfg=dict(type='GN', num_groups=8, requires_grad=True), "
              "norm_eval=False, style='pytorch', init_cfg=None)")
_FPN = ("dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512], out_channels=64, "
        "num_outs=5)")


def _variant_config(name: str, work_dir: str) -> str:
    """The text of a config inheriting the demo config, for one compared model."""
    head = f"_base_ = {osp.join(REPO, DEMO_CONFIG)!r}\nwork_dir = {work_dir!r}\n"
    if name == 'mp3d_9slices':
        return head
    if name == '2d_key_slice':
        resnet = _RESNET_2D.replace("type='ResNet'", "_delete_=True, type='ResNet', in_channels=1")
        return head + f"""
num_slices = 1
model = dict(backbone={resnet}, neck={_FPN})
"""
    if name == '3dce_9slices':
        return head + f"""
model = dict(backbone=dict(_delete_=True, type='ResNet3DCE', slices_per_group=3,
                           resnet={_RESNET_2D}),
             neck={_FPN})
"""
    raise ValueError(f'unknown model {name!r}')


DATA_ROOT = osp.join(REPO, 'work_dirs', 'demo', 'data')


def _run(cmd: List[str], log_path: str) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED='1', DEEPLESION_ROOT=DATA_ROOT)
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f'context_benefit: `{" ".join(cmd)}` failed; see {log_path}')


def train_and_test(name: str, out_root: str) -> Dict[str, float]:
    """Train and test one model; return its FROC summary (``tools/eval_froc.py --summary``)."""
    work_dir = osp.join(out_root, name)
    os.makedirs(work_dir, exist_ok=True)
    config = osp.join(work_dir, f'{name}.py')
    with open(config, 'w') as f:
        f.write(_variant_config(name, work_dir))
    mim = osp.join(BIN, 'mim')
    start = time.time()
    print(f'[{name}] training (log: {work_dir}/train.log)', flush=True)
    _run([mim, 'train', 'mmdet', config], osp.join(work_dir, 'train.log'))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    print(f'[{name}] testing {checkpoint}', flush=True)
    predictions = osp.join(work_dir, 'predictions.pkl')
    _run([mim, 'test', 'mmdet', config, '--checkpoint', checkpoint, '--out', predictions],
         osp.join(work_dir, 'test.log'))
    summary_path = osp.join(work_dir, 'froc.json')
    if osp.exists(summary_path):
        os.remove(summary_path)  # the summary of an earlier run
    _run([sys.executable, osp.join(REPO, 'tools', 'eval_froc.py'), predictions,
          '--summary', summary_path, '--no-breakdowns'], osp.join(work_dir, 'eval.log'))
    with open(summary_path) as f:
        summary = json.load(f)
    summary['minutes'] = (time.time() - start) / 60
    return summary


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--with-3dce', action='store_true', help='also train FPN+3DCE, 9 slices')
    parser.add_argument('--out', default=osp.join(REPO, 'work_dirs', 'context_benefit'))
    args = parser.parse_args(argv)

    subprocess.run([sys.executable, osp.join(REPO, 'tools', 'make_synthetic_deeplesion.py'),
                    '--out', DATA_ROOT, '--preset', 'demo', '--seed', '0', '--reuse'], check=True)
    names = ['mp3d_9slices', '2d_key_slice'] + (['3dce_9slices'] if args.with_3dce else [])
    results = {name: train_and_test(name, args.out) for name in names}

    fps = ['0.5', '1', '2', '4', '8', '16']
    metric_keys = [f'sens@{fp}' for fp in fps] + ['mean_0.5-4', 'mAP@0.5']
    header = f"{'model':<14}" + ''.join(f'{key:>11}' for key in metric_keys) + f"{'minutes':>9}"
    print('\n' + header)
    print('-' * len(header))
    for name, summary in results.items():
        metrics = summary['metrics']
        row = ''.join(f'{100 * metrics["froc/" + key]:>11.2f}' for key in metric_keys)
        print(f'{name:<14}{row}{summary["minutes"]:>9.1f}')
    print('(sensitivities and mAP in %, test split of the synthetic set)')
    with open(osp.join(args.out, 'context_benefit.json'), 'w') as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

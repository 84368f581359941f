"""The Python steps of ``tools/benchmark/gpu_check.sh``: machine facts, the training config,
and the summary of a run.

    python tools/benchmark/gpu_check.py env --out env.json
    python tools/benchmark/gpu_check.py train-config CONFIG --data DIR --work-dir DIR \
        --epochs E --out RUN_CONFIG.py [--dry-run]
    python tools/benchmark/gpu_check.py summary --env env.json --train-dir DIR \
        --test-dir DIR --backbones a.json [b.json ...] --out gpu_check.json

``train-config`` writes ``RUN_CONFIG.py``: the config as it is, read
with ``DEEPLESION_ROOT=<data>``, trained for ``--epochs`` epochs with validation after the
last, a log line every 5 iterations and one checkpoint; with ``--dry-run`` also shrunk as
``mp3d-quick-check`` shrinks it (64 px, 2 training iterations of one image, 2 validation
images). ``summary`` reads the training log (``vis_data/scalars.json``), the test
metrics and the backbone tables, writes them to one JSON file and prints them as Markdown.
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

#: Training iterations per log line (the step time is averaged over them).
LOG_INTERVAL = 5
#: The targets of the GPU issue: MP3D-63 / MR3D forward + backward time and peak memory, and
#: the paper detector's training peak memory at batch 2 (the paper's 12 GB TITAN V).
TARGET_TIME_RATIO, TARGET_MEMORY_RATIO, TARGET_TRAIN_MEMORY_GB = 0.7, 1.0, 12.0


def machine_facts() -> Dict[str, Any]:
    """GPU, driver and library versions of this machine, and how mmcv's ops run on it."""
    import torch
    facts: Dict[str, Any] = dict(
        python=platform.python_version(), cpu_cores=os.cpu_count(), torch=torch.__version__,
        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
        gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    if torch.cuda.is_available():
        facts['gpu_memory_gib'] = round(
            torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        try:
            facts['driver'] = subprocess.run(
                ['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                capture_output=True, text=True, timeout=30).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            facts['driver'] = None
    for name in ('torchvision', 'mmcv', 'mmengine', 'mmdet'):
        try:
            facts[name] = __import__(name).__version__
        except ImportError:
            facts[name] = None
    from mp3d_mmdet.utils.torchvision_ops import mmcv_has_cuda_ops
    facts['mmcv_cuda_ops'] = mmcv_has_cuda_ops()
    facts['cuda_nms_roi_align'] = (
        None if not torch.cuda.is_available() else
        'mmcv (CUDA build)' if facts['mmcv_cuda_ops'] else 'torchvision (routed)')
    return facts


def write_train_config(config: str, data: str, work_dir: str, epochs: int, dry_run: bool,
                       out: str) -> None:
    """Write the run's config (see the module docstring) to ``out``."""
    from mp3d_mmdet.cli.quick_check import quick_check_config
    from mp3d_mmdet.utils.config import leaf_datasets, load_config
    data = osp.abspath(data)
    os.environ['DEEPLESION_ROOT'] = data
    cfg = load_config(config)
    if dry_run:
        cfg = quick_check_config(cfg, osp.abspath(work_dir), data, iters=2, val_images=2,
                                 scale=64)
    cfg.work_dir = osp.abspath(work_dir)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=LOG_INTERVAL)
    cfg.default_hooks.checkpoint = dict(type='CrashSafeCheckpointHook', interval=epochs,
                                        max_keep_ckpts=1, save_best=None)
    cfg.log_processor = dict(cfg.get('log_processor') or {}, window_size=LOG_INTERVAL)
    for split in ('val', 'test'):
        for _, dataset in leaf_datasets(cfg[f'{split}_dataloader']['dataset']):
            dataset['data_root'] = data + os.sep
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    cfg.dump(out)


def _json_lines(path: str) -> List[Dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def training_figures(train_dir: str) -> Dict[str, Any]:
    """Step time and peak memory of the training run in ``train_dir`` (its newest log).

    The step time is the median of the logged per-interval means after the first interval
    (which holds cuDNN's algorithm search and the first allocations); the peak memory is
    the largest ``memory`` mmengine logged (``torch.cuda.max_memory_allocated`` in MiB,
    only logged on CUDA).
    """
    logs = sorted(glob.glob(osp.join(train_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no training log (*/vis_data/scalars.json) in {train_dir}')
    rows = _json_lines(logs[-1])
    train = [r for r in rows if 'loss' in r and 'time' in r]
    if not train:
        raise ValueError(f'{logs[-1]}: no training iteration was logged')
    steady = train[1:] or train
    memory = [r['memory'] for r in train if 'memory' in r]
    validation = [r for r in rows if any(k.startswith('froc/') for k in r)]
    return dict(
        log=logs[-1], iterations=train[-1]['iter'], logged_intervals=len(train),
        step_time_s=statistics.median(r['time'] for r in steady),
        data_time_s=statistics.median(r['data_time'] for r in steady),
        peak_memory_mib=max(memory) if memory else None,
        first_loss=train[0]['loss'], last_loss=train[-1]['loss'],
        validation={k: v for k, v in validation[-1].items() if k.startswith('froc/')}
        if validation else None)


def test_figures(test_dir: str) -> Dict[str, Any]:
    """The metrics ``mim test`` logged in ``test_dir`` (its newest ``<timestamp>.json``)."""
    logs = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
    if not logs:
        raise FileNotFoundError(f'no test result (*/<timestamp>.json) in {test_dir}')
    metrics = _json_lines(logs[-1])[-1]
    return {k: v for k, v in metrics.items() if k.startswith('froc/')}


def _fmt(value: Optional[float], digits: int = 0) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def markdown(summary: Dict[str, Any]) -> str:
    """The summary as Markdown tables."""
    env, train, test = summary['env'], summary['training'], summary['test']
    lines = [f'missing: {m}' for m in summary['missing']]
    lines.append(f"GPU: {env.get('gpu')} ({env.get('gpu_memory_gib')} GiB), driver "
                 f"{env.get('driver')}; torch {env['torch']} (CUDA {env['cuda']}, cuDNN "
                 f"{env['cudnn']}), torchvision {env.get('torchvision')}, mmcv {env['mmcv']} "
                 f"(CUDA ops: {env['mmcv_cuda_ops']}; CUDA nms/RoIAlign: "
                 f"{env['cuda_nms_roi_align']}), mmdet {env['mmdet']}")
    if train:
        lines += [
            '', f"| paper config training ({summary['config']}) | value |", '| --- | --- |',
            f"| iterations (batch {summary['batch_size']}) | {train['iterations']} |",
            f"| step time, median of {LOG_INTERVAL}-iteration means after the first | "
            f"{train['step_time_s'] * 1e3:.0f} ms |",
            f"| data time per step | {train['data_time_s'] * 1e3:.0f} ms |",
            f"| peak memory (max_memory_allocated) | {_fmt(train['peak_memory_mib'])} MiB"
            + ('' if train['peak_memory_mib'] is None else
               f" = {train['peak_memory_mib'] * 2**20 / 1e9:.1f} GB (target <= "
               f'{TARGET_TRAIN_MEMORY_GB:g} GB)') + ' |',
            f"| loss, first -> last logged | {train['first_loss']:.3f} -> "
            f"{train['last_loss']:.3f} |"]
    if test:
        lines.append('| mim test: ' + ', '.join(
            f'{k[5:]} {v:.3f}' for k, v in test.items() if '/' not in k[5:]) + ' | |')
    for report in summary['backbones']:
        for table in report['tables']:
            lines += ['', f"backbones, {table['mode']}, variant {table['variant']}, batch "
                      f"{report['batch_size']} x {report['num_slices']} x "
                      f"{report['shape'][0]} x {report['shape'][1]}, AMP {report['amp']}:",
                      '| model | GMACs | best ms | median ms | peak MiB |',
                      '| --- | --- | --- | --- | --- |']
            lines += [f"| {name} | {row['gmacs']:.1f} | {row['best_ms']:.1f} | "
                      f"{row['median_ms']:.1f} | {_fmt(row['peak_mib'])} |"
                      for name, row in table['rows'].items()]
            ratio = mp3d_vs_mr3d(table)
            if ratio:
                lines.append(ratio)
    return '\n'.join(lines)


def mp3d_vs_mr3d(table: Dict[str, Any]) -> Optional[str]:
    """The line comparing MP3D-63 with MR3D in a forward + backward table against the
    targets (None for other tables)."""
    rows = table['rows']
    if table['mode'] != 'train' or not {'mp3d', 'mr3d'} <= set(rows):
        return None
    time_ratio = rows['mp3d']['best_ms'] / rows['mr3d']['best_ms']
    line = (f'MP3D / MR3D: time {time_ratio:.2f}x (target <= {TARGET_TIME_RATIO:g}x)')
    if rows['mp3d']['peak_mib'] is not None:
        memory_ratio = rows['mp3d']['peak_mib'] / rows['mr3d']['peak_mib']
        line += f', peak memory {memory_ratio:.2f}x (target <= {TARGET_MEMORY_RATIO:g}x)'
    return line


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    env = sub.add_parser('env', help='machine facts to a JSON file')
    env.add_argument('--out', required=True)
    cfg = sub.add_parser('train-config', help="write the run's training config")
    cfg.add_argument('config')
    cfg.add_argument('--data', required=True, help='DeepLesion-format data folder')
    cfg.add_argument('--work-dir', required=True)
    cfg.add_argument('--epochs', type=int, default=1)
    cfg.add_argument('--out', required=True, help='the config file to write')
    cfg.add_argument('--dry-run', action='store_true', help='quick-check sizes (CPU)')
    summary = sub.add_parser('summary', help='collect the results; print them')
    summary.add_argument('--env', required=True)
    summary.add_argument('--config', required=True, help='the config file trained')
    summary.add_argument('--train-dir', required=True)
    summary.add_argument('--test-dir', required=True)
    summary.add_argument('--backbones', nargs='*', default=[])
    summary.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    if args.command == 'train-config' and args.epochs < 1:
        parser.error('--epochs must be >= 1')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.command == 'env':
        facts = machine_facts()
        with open(args.out, 'w') as f:
            json.dump(facts, f, indent=1)
        print(json.dumps(facts))
    elif args.command == 'train-config':
        write_train_config(args.config, args.data, args.work_dir, args.epochs, args.dry_run,
                           args.out)
    else:
        with open(args.env) as f:
            env = json.load(f)
        backbones = []
        for path in args.backbones:
            with open(path) as f:
                backbones.append(json.load(f))
        summary = dict(env=env, config=osp.basename(args.config), batch_size=None,
                       training=None, test=None, backbones=backbones, missing=[])
        try:  # a run on a GPU reports what it got: a failed step leaves its part empty
            from mmengine.config import Config
            summary['batch_size'] = Config.fromfile(
                args.config).train_dataloader.batch_size
            summary['training'] = training_figures(args.train_dir)
            summary['test'] = test_figures(args.test_dir)
        except (OSError, ValueError, KeyError) as error:
            summary['missing'].append(f'{type(error).__name__}: {error}')
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=1)
        print(markdown(summary))
        print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

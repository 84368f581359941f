"""Run any config's real code path for a few iterations on the CPU: a check in minutes.

    mp3d-quick-check configs/mp3d_fpn_deeplesion_2x.py
    mp3d-quick-check configs/mr3d_fpn_deeplesion_2x.py --cfg-options num_slices=5
    mp3d-quick-check configs/mp3d_fpn_coco_pretrain_3slice_6x.py --data-root data/coco

The model is the config's own, at full size; what shrinks is the work: one training epoch of
``--iters`` iterations of one image each, then validation on ``--val-images`` images, at a
``--scale`` x ``--scale`` input (every train and test resize of the config), with a log line
per iteration. Training goes through the runner ``mim train`` builds (the config's
``runner_type``, so AMP becomes fp32 and NCCL gloo on a CPU), so the same checks apply:
slice counts, evaluator inputs, checkpoint saving. For a DeepLesion config without
``--data-root`` a small synthetic DeepLesion-format set is written into the work folder
first (:func:`mp3d_mmdet.synthetic.make_synthetic_deeplesion`); other datasets (COCO for the
pre-training config) need ``--data-root``.

The work folder (``--work-dir``, default ``work_dirs/quick_check/<config name>``) holds the
log, the checkpoint and the synthetic data; it must be missing, empty, or an earlier quick
check's (marked by a ``.mp3d_quick_check`` file), so that no training run's checkpoints are
written over. Exit status 0 when training and validation ran, 1 with a one-line error
otherwise.
"""
import argparse
import contextlib
import copy
import os
import os.path as osp
import sys
import time
from typing import Iterator, List, Optional

from mmengine.config import Config

from ..utils.config import config_pipelines, leaf_datasets, load_config, type_name
from .common import add_cfg_options_argument, make_parser, run_command

PROG = 'mp3d-quick-check'
#: The file that marks a work folder as a quick check's.
MARKER = '.mp3d_quick_check'
#: Environment variables the plugin's configs take their data roots from.
DATA_ROOT_VARIABLES = ('DEEPLESION_ROOT', 'COCO_ROOT')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = make_parser(PROG, __doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file (any config of configs/, or your own)')
    parser.add_argument('--work-dir', default=None,
                        help='work folder (default: work_dirs/quick_check/<config name>)')
    parser.add_argument('--data-root', default=None,
                        help="the config's data: every dataset's data_root, and DEEPLESION_ROOT "
                        'and COCO_ROOT while the config is read (default for DeepLesion '
                        'configs: a small synthetic set written into the work folder)')
    parser.add_argument('--iters', type=int, default=2, help='training iterations (images)')
    parser.add_argument('--val-images', type=int, default=2, help='validation images')
    parser.add_argument('--scale', type=int, default=128,
                        help='input size of every train and test resize (px)')
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.val_images < 1 or args.scale < 32:
        parser.error('--iters and --val-images must be >= 1, --scale >= 32')
    return args


def _resize_to(pipeline: List[dict], scale: int) -> None:
    """Set every resize of a pipeline to ``scale`` x ``scale`` (in place)."""
    for transform in pipeline:
        if not isinstance(transform, dict):
            continue
        if 'scales' in transform:
            transform['scales'] = [(scale, scale)]
        if 'scale' in transform:
            transform['scale'] = (scale, scale)


def quick_check_config(cfg: Config, work_dir: str, data_root: Optional[str], iters: int,
                       val_images: int, scale: int) -> Config:
    """The small-scale version of a full config (the model is left as it is).

    Args:
        cfg: the config, with its ``--cfg-options`` merged (not changed).
        work_dir: the runner's work folder.
        data_root: the data of every dataloader, or None to keep the config's.
        iters: training iterations of one image each (one epoch).
        val_images: images of the validation (and test) loop.
        scale: input size of every resize.

    Returns:
        A copy with the loops, dataloaders, resizes, hooks and work folder overridden.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.resume = False
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    for split, count in (('train', iters), ('val', val_images), ('test', val_images)):
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        loader.update(batch_size=1, num_workers=0, persistent_workers=False)
        loader.pop('batch_sampler', None)
        for _, dataset in leaf_datasets(loader['dataset']):
            dataset['indices'] = count
            if data_root is not None:
                dataset['data_root'] = data_root
    for _, pipeline in config_pipelines(cfg):
        _resize_to(pipeline, scale)
    cfg.default_hooks = dict(
        cfg.get('default_hooks') or {},
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CrashSafeCheckpointHook', interval=1, max_keep_ckpts=1,
                        save_best=None))
    cfg.log_processor = dict(cfg.get('log_processor') or {}, window_size=1)
    cfg.randomness = dict(seed=0)
    return cfg


def _synthetic_deeplesion(folder: str, scale: int) -> str:
    """A small synthetic DeepLesion-format set in ``folder`` (kept when already there)."""
    from ..synthetic import (RECIPE_FILE, make_synthetic_deeplesion, read_synthetic_recipe,
                             synthetic_recipe)
    kwargs = dict(num_patients=6, seed=0, image_size=max(64, scale))
    if not (osp.isfile(osp.join(folder, RECIPE_FILE))
            and read_synthetic_recipe(folder) == synthetic_recipe(**kwargs)):
        print(f'{PROG}: writing a synthetic DeepLesion-format set to {folder}', flush=True)
        make_synthetic_deeplesion(folder, progress=False, **kwargs)
    return folder + os.sep


@contextlib.contextmanager
def _data_root_variables(data_root: str) -> Iterator[None]:
    """Set ``DEEPLESION_ROOT`` and ``COCO_ROOT`` (the data roots the plugin's configs read)
    to ``data_root`` for the duration of the block."""
    saved = {key: os.environ.get(key) for key in DATA_ROOT_VARIABLES}
    os.environ.update({key: data_root for key in DATA_ROOT_VARIABLES})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _dataset_types(cfg: Config) -> List[str]:
    """Type names of the datasets the train / val / test dataloaders read."""
    types = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        types += [type_name(d) for _, d in leaf_datasets(loader.get('dataset') or {})]
    return types


def _prepare_work_dir(work_dir: str) -> None:
    """Create (or reuse) the work folder; refuse a folder that is not a quick check's."""
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise ValueError(f'--work-dir {work_dir} is a file')
    if osp.isdir(work_dir) and os.listdir(work_dir) and not osp.isfile(
            osp.join(work_dir, MARKER)):
        raise ValueError(f'--work-dir {work_dir} is not empty and not a quick check\'s '
                         f'(no {MARKER}): choose another folder')
    os.makedirs(work_dir, exist_ok=True)
    open(osp.join(work_dir, MARKER), 'a').close()


def run(args: argparse.Namespace) -> str:
    """Build the small-scale config, train and validate; returns the work folder."""
    import mp3d_mmdet  # noqa: F401  (registers the plugin, as custom_imports would)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = load_config(args.config, args.cfg_options)
    types = sorted(set(_dataset_types(cfg)))
    if args.data_root is None and types != ['DeepLesionDataset']:
        raise ValueError(f'{args.config} reads {types} data: pass --data-root (only '
                         'DeepLesion data is made up here)')
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = osp.abspath(args.work_dir or osp.join('work_dirs', 'quick_check', name))
    _prepare_work_dir(work_dir)
    data_root = args.data_root or _synthetic_deeplesion(osp.join(work_dir, 'data'),
                                                        args.scale)
    with _data_root_variables(data_root):  # what the config derives from it follows too
        cfg = load_config(args.config, args.cfg_options)
    small = quick_check_config(cfg, work_dir, data_root, args.iters, args.val_images,
                               args.scale)
    start = time.perf_counter()
    runner = RUNNERS.build(small) if 'runner_type' in small else Runner.from_cfg(small)
    runner.train()
    print(f'{PROG}: {name}: {args.iters} training iterations and validation on '
          f'{args.val_images} images at {args.scale} px ran in '
          f'{time.perf_counter() - start:.0f} s; log and checkpoint in {work_dir}')
    return work_dir


def main(argv: Optional[List[str]] = None) -> int:
    """Run the quick check; returns the exit status
    (:func:`~mp3d_mmdet.cli.common.run_command`)."""
    args = parse_args(argv)
    return run_command(PROG, lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())

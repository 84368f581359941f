"""Write a synthetic dataset in the exact layout of the NIH DeepLesion release.

Example::

    mp3d-make-synthetic-deeplesion --out data/synthetic_deeplesion \
        --num-patients 20 --seed 0 --image-size 256

See :mod:`mp3d_mmdet.synthetic` for what the data contains. ``--preset
demo`` is the set of the demo (``tools/demo.sh``) and of
``tools/benchmark/context_benefit.py``; explicit options override a preset's values.

``--reuse`` (what the demo and the benchmarks use): a folder that already holds a data set of
the same recipe -- these options and the same generator source, recorded in
``synthetic_recipe.json`` -- is kept as it is; one written by this generator with another
recipe (other options, or an older generator) is deleted and written anew; any other data in
the folder is an error.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

from ..synthetic import (GENERATED_ENTRIES, RECIPE_FILE, make_synthetic_deeplesion,
                         read_synthetic_recipe, synthetic_recipe)
from .common import add_progress_argument, make_parser, run_command

PROG = 'mp3d-make-synthetic-deeplesion'


#: Named argument sets: the demo's data (configs/mp3d_fpn_synthetic_demo.py trains on it).
#: Its vessels are at most 25 mm across, as real ones mostly are: lesions of 15-25 mm can be
#: told from them only along z, larger ones by their size too.
PRESETS: Dict[str, Dict[str, Any]] = {
    'demo': dict(num_patients=60, image_size=160, lesion_diameter_mm=(15.0, 45.0),
                 vessel_max_diameter_mm=25.0),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = make_parser(
        PROG, 'Write a synthetic DeepLesion-format dataset (DL_info.csv + Images_png/).')
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='a named set of the options below (explicit options win)')
    parser.add_argument('--out', required=True, help='output folder (must not hold a dataset)')
    parser.add_argument('--num-patients', type=int, default=12, help='patients (>= 3)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (deterministic output)')
    parser.add_argument('--image-size', type=int, default=512,
                        help='image width = height in px; one series is 1.5x this size')
    parser.add_argument('--lesions-per-series', type=int, nargs=2, default=(1, 3),
                        metavar=('MIN', 'MAX'), help='lesions per series (inclusive range)')
    parser.add_argument('--lesion-diameter-mm', type=float, nargs=2, default=(5.0, 40.0),
                        metavar=('MIN', 'MAX'), help='range of the lesion long diameters')
    parser.add_argument('--noisy-fraction', type=float, default=0.06,
                        help='probability of a row being Possibly_noisy')
    parser.add_argument('--vessels-per-series', type=int, nargs=2, default=(3, 6),
                        metavar=('MIN', 'MAX'),
                        help='vessel-like confounders per series (inclusive range)')
    parser.add_argument('--vessel-max-diameter-mm', type=float, default=None,
                        help='cap of the vessel diameters (default: none, drawn exactly like '
                        'the lesion diameters)')
    parser.add_argument('--reuse', action='store_true',
                        help='keep a data set of the same recipe already in --out; replace one '
                        'of another recipe written by this generator')
    add_progress_argument(parser)
    preset = parser.parse_known_args(argv)[0].preset
    if preset is not None:
        parser.set_defaults(**PRESETS[preset])
    return parser.parse_args(argv)


def _generator_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    return dict(num_patients=args.num_patients, seed=args.seed, image_size=args.image_size,
                lesions_per_series=tuple(args.lesions_per_series),
                lesion_diameter_mm=tuple(args.lesion_diameter_mm),
                noisy_fraction=args.noisy_fraction,
                vessels_per_series=tuple(args.vessels_per_series),
                vessel_max_diameter_mm=args.vessel_max_diameter_mm)


def reuse_or_clear(out: str, recipe: Dict[str, Any]) -> bool:
    """``--reuse``: True if ``out`` holds this recipe's data; deletes another recipe's data.

    Raises:
        FileExistsError: ``out`` holds a data set without a recipe (not written by this
            generator, or an interrupted run).
    """
    stored = read_synthetic_recipe(out)
    dataset_files = [osp.join(out, name) for name in GENERATED_ENTRIES]
    if stored == recipe:
        return True
    if stored is None:
        if any(osp.exists(path) for path in dataset_files):
            raise FileExistsError(f'{out} holds a data set without {RECIPE_FILE} (not written by '
                                  'this generator, or an interrupted run); delete it or choose '
                                  'another --out')
        return False
    changed = sorted(k for k in set(stored) | set(recipe) if stored.get(k) != recipe.get(k))
    print(f'{out}: replacing a data set of another recipe (differs in: {", ".join(changed)})')
    for path in dataset_files:
        if osp.isdir(path):
            shutil.rmtree(path)
        elif osp.exists(path):
            os.remove(path)
    return False


def main(argv: Optional[List[str]] = None) -> int:
    """Write (or reuse) the data set; returns the exit status
    (:func:`~mp3d_mmdet.cli.common.run_command`)."""
    args = parse_args(argv)
    return run_command(PROG, lambda: write_data_set(args))


def write_data_set(args: argparse.Namespace) -> None:
    """Write the data set :func:`parse_args` describes, or keep it (``--reuse``); print its
    summary.

    Raises:
        ValueError: unusable generator options.
        FileExistsError: ``--out`` holds other data (:func:`reuse_or_clear`).
    """
    kwargs = _generator_kwargs(args)
    start = time.perf_counter()
    if args.reuse and reuse_or_clear(args.out, synthetic_recipe(**kwargs)):
        print(f'reusing {args.out} (same {RECIPE_FILE}: options and generator unchanged)')
        return
    summary = make_synthetic_deeplesion(args.out, progress=not args.no_progress, **kwargs)
    elapsed = time.perf_counter() - start
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f'wrote {summary["num_png_files"]} slices and {summary["num_lesions"]} lesion rows '
          f'to {args.out} in {elapsed:.1f} s')


if __name__ == '__main__':
    sys.exit(main())

"""Write a synthetic dataset in the exact layout of the NIH DeepLesion release.

Example::

    python tools/make_synthetic_deeplesion.py --out data/synthetic_deeplesion \
        --num-patients 20 --seed 0 --image-size 256

See :mod:`mp3d_mmdet.datasets.synthetic` for what the data contains. ``--preset demo`` is the
set of the demo (``tools/demo.sh``) and of ``tools/benchmark/context_benefit.py``; explicit
options override a preset's values.
"""
import argparse
import json
import sys
import time
from typing import Any, Dict, List, Optional

from mp3d_mmdet.datasets.synthetic import make_synthetic_deeplesion


#: Named argument sets: the demo's data (configs/mp3d_fpn_synthetic_demo.py trains on it).
PRESETS: Dict[str, Dict[str, Any]] = {
    'demo': dict(num_patients=60, image_size=160, lesion_diameter_mm=(15.0, 45.0)),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a synthetic DeepLesion-format dataset (DL_info.csv + Images_png/).')
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
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    preset = parser.parse_known_args(argv)[0].preset
    if preset is not None:
        parser.set_defaults(**PRESETS[preset])
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = make_synthetic_deeplesion(
            args.out,
            num_patients=args.num_patients,
            seed=args.seed,
            image_size=args.image_size,
            lesions_per_series=tuple(args.lesions_per_series),
            lesion_diameter_mm=tuple(args.lesion_diameter_mm),
            noisy_fraction=args.noisy_fraction,
            vessels_per_series=tuple(args.vessels_per_series),
            vessel_max_diameter_mm=args.vessel_max_diameter_mm,
            progress=not args.no_progress)
    except (ValueError, FileExistsError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f'wrote {summary["num_png_files"]} slices and {summary["num_lesions"]} lesion rows '
          f'to {args.out} in {elapsed:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Score a batch of 3D lesion candidates the way DeepLesion's manual 3D test set does (LENS).

Reads the results file of ``mp3d-detect-volumes`` (``detections_3d.jsonl``: 3D boxes in each
volume's voxel indices, with the slice number of voxel z = 0) and one of two ground truths:

* ``--gt DeepLesion_manual_1K_test_release.pkl --split test`` (or the generator's
  ``lesions_3d.pkl``): every lesion of each sub-volume boxed in 3D; the evaluated volumes are
  the split's sub-volumes, and each must be in the results;
* ``--gt DL_info.csv --split test``: the key-slice boxes of the split (the "P3D" mode: a
  candidate hits a lesion when its slice range holds the key slice and the in-plane overlap
  passes); the evaluated volumes are the results' sub-volumes of the split's series, and every
  key slice of the split must lie in one of them.

and prints the sensitivity at 0.125 ... 8 false positives per sub-volume and their mean, with
the protocol named (LENS: IoBB >= 0.3, inclusive voxel sizes, all candidates ranked together,
FPs counted per sub-volume), a breakdown by lesion size (< 10, 10-30, > 30 mm: the RECIST long
diameter from ``DL_info.csv``, or the larger in-plane side of a 3D box), and optionally writes
the 3D FROC curves as a PNG and the numbers as JSON.

Examples::

    mp3d-eval-volumes work_dirs/lens/detections_3d.jsonl \\
        --gt DeepLesion_manual_1K_test_release.pkl --split test --plot work_dirs/lens/froc_3d.png
    mp3d-eval-volumes work_dirs/lens/detections_3d.jsonl --gt data/DeepLesion/DL_info.csv
"""
import argparse
import math
import os.path as osp
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from mp3d_mmdet.datasets.lesions_3d import VolumeGroundTruth

from .common import add_split_argument, make_parser, run_command, write_json_summary

PROG = 'mp3d-eval-volumes'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = make_parser(PROG, __doc__.split('\n')[0])
    parser.add_argument('results', help='detections_3d.jsonl of mp3d-detect-volumes')
    parser.add_argument('--gt', required=True,
                        help='LENS-format 3D annotations (.pkl) or DeepLesion DL_info.csv '
                        '(key-slice boxes)')
    add_split_argument(parser, 'test', 'split of --gt to evaluate')
    parser.add_argument('--keep-noisy', action='store_true',
                        help='with DL_info.csv: keep the Possibly_noisy lesions')
    parser.add_argument('--overlap', default='iobb', choices=['iobb', 'iou', 'iogt', 'iobbgt'],
                        help='overlap measure of a hit (LENS: iobb)')
    parser.add_argument('--overlap-thr', type=float, default=0.3,
                        help='overlap of a hit (LENS: 0.3)')
    parser.add_argument('--fps', type=float, nargs='+',
                        default=[0.125, 0.25, 0.5, 1, 2, 4, 8],
                        help='FP-per-sub-volume rates to report; the mean is over all of them')
    parser.add_argument('--plot', default=None, help='write the 3D FROC curves to this PNG')
    parser.add_argument('--summary', default=None,
                        help='write the sensitivities and the settings to this JSON file')
    return parser.parse_args(argv)


def load_ground_truth(path: str, split: str, result_names: Sequence[str],
                      keep_noisy: bool) -> 'VolumeGroundTruth':
    """The :class:`~mp3d_mmdet.datasets.lesions_3d.VolumeGroundTruth` of ``--gt``: a pickle
    (recognised from its content, any protocol) is read as LENS annotations,
    anything else as ``DL_info.csv``."""
    from mp3d_mmdet.datasets.lesions_3d import (is_pickle_file, key_slice_ground_truth,
                                                read_lens_annotations)

    if not osp.isfile(path):
        raise FileNotFoundError(f'ground-truth file not found: {path}')
    if is_pickle_file(path):
        if keep_noisy:
            raise ValueError(f'--keep-noisy applies to DL_info.csv; {path} holds 3D boxes of '
                             'every lesion')
        return read_lens_annotations(path, split)
    return key_slice_ground_truth(path, split, result_names, exclude_noisy=not keep_noisy)


def lesion_sizes_mm(ground_truth: 'VolumeGroundTruth',
                    records: Dict[str, Dict[str, Any]]) -> List[np.ndarray]:
    """Per evaluated volume, ``(g,)`` lesion sizes in mm: the RECIST long diameters where the
    ground truth has them, else the larger in-plane side of each 3D box (inclusive pixels)
    times the volume's pixel spacing from the results file."""
    sizes = []
    for name, boxes in ground_truth.boxes.items():
        if ground_truth.long_diameters_mm is not None:
            sizes.append(ground_truth.long_diameters_mm[name])
            continue
        sx, sy = (float(v) for v in records[name]['spacing_mm_xyz'][:2])
        sizes.append(np.maximum((boxes[:, 3] - boxes[:, 0] + 1) * sx,
                                (boxes[:, 4] - boxes[:, 1] + 1) * sy))
    return sizes


def evaluate(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the evaluation described by the parsed arguments; print and return the report."""
    from mp3d_mmdet.datasets.lesions_3d import candidates_in_series_slices
    from mp3d_mmdet.volume import read_volume_detections
    from mp3d_mmdet.evaluation.functional import (LENS_READING, lesion_subset_froc_curves_3d,
                                                  plot_froc_curves)
    from mp3d_mmdet.evaluation.functional.froc_protocols import check_fps
    from mp3d_mmdet.evaluation.metrics import lesion_size_subsets
    from mp3d_mmdet.utils.safe_files import check_not_input, check_output_path

    for output, option in ((args.plot, '--plot'), (args.summary, '--summary')):
        if output is not None:
            check_output_path(output, option)
            check_not_input(output, [args.results, args.gt], option)
    if not 0.0 < args.overlap_thr <= 1.0:
        raise ValueError(f'--overlap-thr must be in (0, 1], got {args.overlap_thr}')
    try:
        fps = check_fps(args.fps, distinct=True).tolist()
    except ValueError as error:
        raise ValueError(f'--fps: {error}') from None

    _, records = read_volume_detections(args.results)
    ground_truth = load_ground_truth(args.gt, args.split, list(records), args.keep_noisy)
    names = list(ground_truth.boxes)
    if not names:
        raise ValueError(f"{args.gt}: no sub-volume of the '{args.split}' split to evaluate "
                         f'among the {len(records)} volumes of {args.results}')
    missing = [name for name in names if name not in records]
    if missing:
        raise ValueError(f'{len(missing)} of the {len(names)} sub-volumes of {args.gt} '
                         f"('{args.split}') have no results in {args.results} (first: "
                         f'{missing[0]}); detect in all of them (mp3d-detect-volumes '
                         f'--deeplesion ROOT --split {args.split}) -- the FP rate is per '
                         'sub-volume')
    boxes, gts = candidates_in_series_slices(ground_truth, records, args.results)

    sizes = np.concatenate(lesion_sizes_mm(ground_truth, records) or [np.zeros(0)])
    subsets: 'OrderedDict[str, np.ndarray]' = OrderedDict(all=np.ones(len(sizes), dtype=bool))
    subsets.update(lesion_size_subsets(sizes))
    curves = lesion_subset_froc_curves_3d(boxes, gts, subsets, args.overlap, args.overlap_thr,
                                          key_slice_gt=ground_truth.key_slice)
    if curves['all'] is None:
        raise ValueError(f"{args.gt}: the '{args.split}' sub-volumes hold no lesion: the "
                         'sensitivity is undefined')
    rows = OrderedDict()
    for subset, curve in curves.items():
        sens = (np.full(len(fps), math.nan) if curve is None else
                curve.sens_at_fp(fps, LENS_READING))
        rows[subset] = dict(lesions=int(subsets[subset].sum()),
                            sensitivity=[float(s) for s in sens],
                            mean=float(np.mean(sens)))
    mode = 'key-slice ("P3D")' if ground_truth.key_slice else '3D'
    protocol = (f'LENS {mode} FROC: {args.overlap.upper()} >= {args.overlap_thr:g} (inclusive '
                f'voxel sizes), candidates of all {len(names)} sub-volumes ranked together, '
                'FPs per sub-volume')
    print(_format_report(rows, fps, protocol, ground_truth.source, len(records) - len(names)))

    if args.plot is not None:
        plot_froc_curves(OrderedDict((k, c) for k, c in curves.items() if c is not None),
                         args.plot, fps, title=f'3D FROC ({mode}, {args.overlap.upper()} >= '
                         f'{args.overlap_thr:g})', protocol=LENS_READING,
                         x_label='false positives per sub-volume')
        print(f'3D FROC curves written to {args.plot}')
    report = dict(results=osp.abspath(args.results), ground_truth=ground_truth.source,
                  split=args.split, protocol=protocol, overlap=args.overlap,
                  overlap_thr=args.overlap_thr, key_slice_gt=ground_truth.key_slice,
                  num_subvolumes=len(names), fps=fps,
                  subsets={k: dict(v, sensitivity=[None if math.isnan(s) else s
                                                   for s in v['sensitivity']],
                                   mean=None if math.isnan(v['mean']) else v['mean'])
                           for k, v in rows.items()})
    if args.summary is not None:
        write_json_summary(args.summary, report)
    return report


def _format_report(rows: Dict[str, Dict[str, Any]], fps: List[float], protocol: str,
                   source: str, num_unused: int) -> str:
    from terminaltables import AsciiTable

    header = ['lesions', 'count'] + [f'@{f:g}' for f in fps] + ['mean']
    data = [header]
    for subset, row in rows.items():
        values = ['n/a' if math.isnan(s) else f'{100 * s:.2f}' for s in row['sensitivity']]
        mean = 'n/a' if math.isnan(row['mean']) else f"{100 * row['mean']:.2f}"
        data.append([subset, str(row['lesions'])] + values + [mean])
    table = AsciiTable(data, title=' 3D FROC: sensitivity (%) at FPs per sub-volume ')
    for column in range(1, len(header)):
        table.justify_columns[column] = 'right'
    lines = [table.table, protocol, f'ground truth: {source}']
    if num_unused:
        lines.append(f'{num_unused} volume(s) of the results file are not in the evaluated set '
                     'and were left out')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate and print the report; returns the exit status
    (:func:`~mp3d_mmdet.cli.common.run_command`)."""
    args = parse_args(argv)
    return run_command(PROG, lambda: evaluate(args))


if __name__ == '__main__':
    sys.exit(main())

"""Evaluate saved DeepLesion detections with the FROC metric (same report as in training).

Reads either

* the pickle that ``mim test mmdet CONFIG --checkpoint CKPT --out results.pkl`` (mmdet's
  ``DumpDetResults``) writes: a list of data-sample dicts with ``pred_instances`` in original
  image coordinates, and -- with this project's test pipeline -- the ground truth in
  ``instances`` / ``slice_interval``; or
* the JSON that ``FROCMetric(outfile_prefix=...)`` writes (``<prefix>.froc_records.json``),
  which holds predictions and ground truth,

and prints the sensitivities at 0.5..16 FPs per image, their 0.5-4 mean, mAP@0.5 and the
lesion type / size / slice-interval breakdowns, under the ``deeplesion`` protocol (3DCE /
MULAN / AlignShift) or, with ``--protocol mp3d``, the official MP3D evaluation's. ``--ann``
takes the ground truth from a DeepLesion annotation file instead, ``DL_info.csv`` or an
official ``deeplesion_<split>.json`` (through ``DeepLesionDataset``, matched on ``img_id``;
every image of the split must have an entry in the predictions).

Examples::

    mp3d-eval-froc work_dirs/mp3d/results.pkl
    mp3d-eval-froc results.pkl --ann data/DeepLesion/DL_info.csv --split test \\
        --plot-dir work_dirs/mp3d --summary work_dirs/mp3d/froc_summary.json
    mp3d-eval-froc results.pkl --protocol mp3d --keep-noisy \\
        --ann data/DeepLesion/annotations/deeplesion_test.json
"""
import argparse
import math
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .common import (add_hit_arguments, add_split_argument, make_parser, run_command,
                     write_json_summary)

PROG = 'mp3d-eval-froc'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = make_parser(PROG, 'FROC / mAP@0.5 evaluation of saved DeepLesion detections')
    parser.add_argument('predictions',
                        help='.pkl from `mim test ... --out` or .json from FROCMetric')
    parser.add_argument('--ann', default=None,
                        help='DeepLesion DL_info.csv or official deeplesion_<split>.json to take '
                        'the ground truth from (default: the ground truth stored in the '
                        'prediction file)')
    add_split_argument(parser, None, 'split of --ann to evaluate (DL_info.csv: default test; '
                       'a JSON file is one split)')
    parser.add_argument('--keep-noisy', action='store_true',
                        help='with --ann: keep the noisy lesions (3DCE / MULAN / AlignShift '
                        'exclude them, the official MP3D evaluation keeps them)')
    parser.add_argument('--protocol', default='deeplesion',
                        help="FROC protocol: 'deeplesion' (3DCE / MULAN / AlignShift) or 'mp3d' "
                        '(the official MP3D evaluation behind the MP3D paper\'s tables)')
    parser.add_argument('--fps', type=float, nargs='+', default=[0.5, 1, 2, 4, 8, 16],
                        help='FP-per-image rates to report')
    add_hit_arguments(parser)
    parser.add_argument('--no-map', action='store_true', help='skip mAP (pycocotools)')
    parser.add_argument('--no-breakdowns', action='store_true',
                        help='skip the lesion type / size / slice interval breakdowns')
    parser.add_argument('--out-of-subset-detections', default='false_positive',
                        choices=['false_positive', 'ignore'],
                        help='type/size breakdowns: what a detection overlapping only lesions '
                        'outside the subset counts as')
    parser.add_argument('--plot-dir', default=None,
                        help='write the FROC curves to <plot-dir>/froc_curve.png')
    parser.add_argument('--summary', default=None,
                        help='write the metrics and the evaluation settings to this JSON file')
    return parser.parse_args(argv)


def load_prediction_samples(path: str) -> List[Dict[str, Any]]:
    """Read a prediction file as data-sample-like dicts (what ``FROCMetric.process`` takes).

    Args:
        path: ``.pkl``/``.pickle`` (list of data-sample dicts) or ``.json`` (FROC records).

    Returns:
        One dict per image with ``img_id``, ``pred_instances`` (``bboxes``, ``scores``) and,
        where the file has them, ``img_path``, ``instances`` and ``slice_interval``. A
        pickle is unpickled with an allow-list of plain-data types: one that would build
        anything else (and so could run code) is refused.

    Raises:
        FileNotFoundError / ValueError: missing file, unknown extension or content.
    """
    from mp3d_mmdet.evaluation.metrics.froc_records import (load_detection_dump,
                                                            load_records_json)

    if not osp.isfile(path):
        raise FileNotFoundError(f'prediction file not found: {path}')
    extension = osp.splitext(path)[1].lower()
    if extension in ('.pkl', '.pickle'):
        return load_detection_dump(path)
    if extension == '.json':
        samples = []
        for record in load_records_json(path):
            instances = [
                dict(bbox=box, ignore_flag=0, lesion_type=int(lesion_type),
                     long_diameter_mm=float(diameter))
                for box, lesion_type, diameter in zip(record['gt_bboxes'].tolist(),
                                                      record['gt_lesion_types'],
                                                      record['gt_long_diameters_mm'])
            ]
            sample = dict(img_id=record['img_id'], img_path=record['img_path'],
                          pred_instances=dict(bboxes=record['pred_bboxes'],
                                              scores=record['pred_scores']),
                          instances=instances)
            if not math.isnan(record['slice_interval']):
                sample['slice_interval'] = record['slice_interval']
            samples.append(sample)
        return samples
    raise ValueError(f'{path}: unknown prediction file type {extension!r} (use .pkl or .json)')


def attach_annotation_ground_truth(samples: List[Dict[str, Any]], ann: str,
                                   split: Optional[str],
                                   keep_noisy: bool) -> Tuple[List[Dict[str, Any]], str]:
    """Replace each sample's ground truth by the ``DeepLesionDataset`` item of its ``img_id``.

    ``ann`` is ``DL_info.csv`` (``split`` None: 'test') or an official JSON file (one split);
    the release folder is the file's, or its parent when the file lies in ``annotations/``.

    Returns:
        The merged samples and the name of the split they come from.

    Raises:
        ValueError: duplicated ``img_id`` in the predictions, predictions for images outside
            the split, or images of the split without predictions.
    """
    from mp3d_mmdet.datasets import DeepLesionDataset, annotation_file_format

    if split is None and annotation_file_format(ann) == 'csv':
        split = 'test'
    # the release folder: the file's, or its parent for the official annotations/ folder
    data_root = osp.dirname(osp.abspath(ann))
    if osp.basename(data_root) == 'annotations':
        data_root = osp.dirname(data_root)
    dataset = DeepLesionDataset(data_root=data_root,
                                ann_file=osp.relpath(osp.abspath(ann), data_root), split=split,
                                exclude_noisy=not keep_noisy, check_files=False, pipeline=[],
                                test_mode=True, lazy_init=False)
    items = {info['img_id']: info for info in map(dataset.get_data_info, range(len(dataset)))}
    seen = set()
    merged = []
    for sample in samples:
        img_id = sample['img_id']
        if img_id in seen:
            raise ValueError(f'the predictions hold img_id={img_id!r} more than once')
        seen.add(img_id)
        if img_id not in items:
            raise ValueError(f"img_id={img_id!r} of the predictions is not a key slice of the "
                             f"'{dataset.split}' split of {ann} (wrong --split or --keep-noisy?)")
        item = items[img_id]
        merged.append(dict(sample, img_path=item['img_path'], instances=item['instances'],
                           slice_interval=item['slice_interval']))
    missing = [img_id for img_id in items if img_id not in seen]
    if missing:
        raise ValueError(f'{len(missing)} of the {len(items)} key slices of the '
                         f"'{dataset.split}' split of {ann} have no entry in the predictions "
                         f'(first img_id={missing[0]!r}): the FP rate must be divided by all '
                         'images')
    return merged, dataset.split


def evaluate(args: argparse.Namespace) -> Dict[str, float]:
    """Run the evaluation described by the parsed arguments; returns the metrics (prefixed)."""
    import mp3d_mmdet  # noqa: F401  (registers the metric)
    from mp3d_mmdet.evaluation.metrics import FROCMetric
    from mp3d_mmdet.utils.safe_files import check_not_input, check_output_path

    outputs = [(args.summary, '--summary')]
    if args.plot_dir is not None:
        check_output_path(args.plot_dir, '--plot-dir', 'folder')
        outputs.append((osp.join(args.plot_dir, 'froc_curve.png'), '--plot-dir'))
    for output, option in outputs:
        if output is not None:
            check_output_path(output, option)
            check_not_input(output, [args.predictions] + ([args.ann] if args.ann else []),
                            option)

    samples, split = load_prediction_samples(args.predictions), None
    if args.ann is not None:
        samples, split = attach_annotation_ground_truth(samples, args.ann, args.split,
                                                        args.keep_noisy)
    metric = FROCMetric(fps=args.fps, iou_thr=args.iou_thr, protocol=args.protocol,
                        legacy_plus_one=False if args.continuous_iou else None,
                        compute_map=not args.no_map,
                        breakdowns=not args.no_breakdowns,
                        out_of_subset_detections=args.out_of_subset_detections,
                        breakdown_metrics=True, plot_froc=args.plot_dir is not None,
                        out_dir=args.plot_dir)
    try:
        metric.process(None, samples)
    except KeyError as error:
        raise ValueError(f'{args.predictions}: {error.args[0]}; pass --ann DL_info.csv (or an '
                         f'official JSON file) to take the ground truth from it') from error
    except ValueError as error:
        raise ValueError(f'{args.predictions}: {error}') from None
    values = metric.compute_metrics(metric.results)
    metrics = {f'{metric.prefix}/{key}': value for key, value in values.items()}
    if args.summary is not None:
        summary = dict(
            predictions=osp.abspath(args.predictions),
            ground_truth=osp.abspath(args.ann) if args.ann else 'prediction file',
            split=split,
            num_images=len(samples),
            num_lesions=int(sum(len(r['gt_bboxes']) for r in metric.results)),
            iou_thr=args.iou_thr,
            protocol=metric.protocol.name,
            legacy_plus_one=metric.legacy_plus_one,
            out_of_subset_detections=args.out_of_subset_detections,
            metrics={k: (None if isinstance(v, float) and math.isnan(v) else float(v))
                     for k, v in metrics.items()})
        write_json_summary(args.summary, summary)
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate and print the report; returns the exit status
    (:func:`~mp3d_mmdet.cli.common.run_command`)."""
    args = parse_args(argv)
    return run_command(PROG, lambda: evaluate(args))


if __name__ == '__main__':
    sys.exit(main())

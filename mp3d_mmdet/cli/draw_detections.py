#!/usr/bin/env python
"""Draw detections against ground truth on DeepLesion key slices.

    mp3d-draw-detections work_dirs/demo/predictions.pkl --out-dir work_dirs/demo/overlays

PREDICTIONS is the file ``mim test mmdet CONFIG --checkpoint CKPT --out PREDICTIONS.pkl``
writes (one dict per test image with ``img_path``, ``instances`` -- the ground truth in
original-image pixels -- and ``pred_instances``). Each overlay shows the key slice in a
soft-tissue window, ground truth in green and detections above ``--score-thr`` in red (a hit
as the FROC metric counts it: IoU >= ``--iou-thr`` with a ground-truth box, +1-pixel widths
unless ``--continuous-iou``) or orange (false positive), with scores.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from ..datasets import png_to_hu, read_uint16_png
from ..evaluation.metrics import load_detection_dump, record_from_data_sample
from ..utils.safe_files import atomic_imwrite, check_output_path
from ..visualization import SOFT_TISSUE_WINDOW, draw_lesion_overlay
from .common import add_hit_arguments, make_parser, run_command

PROG = 'mp3d-draw-detections'


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = make_parser(PROG, __doc__.split('\n\n')[0])
    parser.add_argument('predictions', help='pickle written by `mim test ... --out X.pkl`')
    parser.add_argument('--out-dir', required=True, help='folder for the PNG overlays')
    parser.add_argument('--num', type=int, default=6, help='number of slices to draw')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='smallest detection score drawn')
    parser.add_argument('--window', type=float, nargs=2, default=SOFT_TISSUE_WINDOW,
                        metavar=('LOW', 'HIGH'), help='display window in HU')
    parser.add_argument('--upscale', type=int, default=2, help='zoom factor of the pictures')
    add_hit_arguments(parser)
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num must be >= 1, got {args.num}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Draw the overlays; returns the exit status (:func:`~mp3d_mmdet.cli.common.run_command`)."""
    args = parse_args(argv)

    def draw() -> None:
        try:
            written = draw_detections(args)
        except KeyError as exc:  # a data sample without a key: the message names both
            raise ValueError(exc.args[0]) from exc
        print(f'{PROG}: wrote {written} overlays to {args.out_dir}')

    return run_command(PROG, draw)


def draw_detections(args: argparse.Namespace) -> int:
    """Write the overlays :func:`parse_args` describes; returns how many were written.

    Raises:
        FileNotFoundError: the predictions file or a key-slice PNG is missing.
        KeyError, ValueError: the predictions file is not a detection dump, or a PNG is not a
            DeepLesion slice (each message names the file).
    """
    check_output_path(args.out_dir, '--out-dir', 'folder')
    results = load_detection_dump(args.predictions)
    # Slices with ground truth first, in image-id order, so the pictures are reproducible.
    with_gt = sorted((r for r in results if r.get('instances')), key=lambda r: r['img_id'])
    chosen = with_gt[:args.num]
    os.makedirs(args.out_dir, exist_ok=True)
    for result in chosen:
        hu = png_to_hu(read_uint16_png(result['img_path']))
        record = record_from_data_sample(result, require_metadata=False)  # as the metric reads it
        canvas = draw_lesion_overlay(
            hu, record['gt_bboxes'], record['pred_bboxes'], record['pred_scores'],
            score_thr=args.score_thr, window=tuple(args.window), upscale=args.upscale,
            iou_thr=args.iou_thr, legacy_plus_one=not args.continuous_iou,
            title=osp.relpath(result['img_path'], osp.dirname(osp.dirname(
                osp.dirname(result['img_path'])))))
        series = osp.basename(osp.dirname(result['img_path']))
        name = f"{series}_{osp.splitext(osp.basename(result['img_path']))[0]}.png"
        atomic_imwrite(osp.join(args.out_dir, name), canvas)
    return len(chosen)


if __name__ == '__main__':
    sys.exit(main())

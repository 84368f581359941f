#!/usr/bin/env python
"""Detect lesions in a whole CT volume and link them across slices into 3D candidates.

    mp3d-detect-volume scan.nii.gz --config configs/mp3d_fpn_deeplesion_2x.py \\
        --checkpoint epoch_24.pth --out results/scan [--device cuda] [--score-thr 0.5]

INPUT: a NIfTI (.nii, .nii.gz), MetaImage (.mha, .mhd) or NRRD (.nrrd, .nhdr) file, or a
folder holding a DICOM series. Writes DIR/detections.json (per-slice boxes, 3D candidates,
the input's geometry and the model used), DIR/lesions.csv (one row per candidate),
DIR/overlays/candidate_<id>.png (best slice of the top candidates) and, as --formats asks
(default: all that apply), DIR/lesions.mrk.json (3D Slicer ROIs), DIR/lesion_labels.nii.gz
with lesion_labels.json (a label map on the input's grid), DIR/lesions_sr.dcm (a DICOM SR
measurement report, DICOM input only) and DIR/report.html (a self-contained report). DIR
must be missing or empty; with --overwrite it may hold an earlier run's results, which are
replaced as a whole once the new ones are complete (DIR then holds exactly the new run's
files). DIR is checked before inference starts, and nothing is written to it if the run
fails. Warnings about the input
(reorientation, intensities that do not look like HU, edge-slice replication ...) go to
stderr and into detections.json. Unusable input, config, checkpoint or device: a one-line
error on stderr and exit status 1 (2 for bad command-line arguments).

Many volumes (a list file, a folder, DeepLesion sub-volumes) into one resumable results
file: ``mp3d-detect-volumes`` (:mod:`mp3d_mmdet.cli.detect_volumes`).
"""
import argparse
import os.path as osp
import sys
import time
import warnings
from typing import List, Optional

from mmengine.config import DictAction

PROG = 'mp3d-detect-volume'


def add_detection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model and inference options shared with ``mp3d-detect-volumes``: ``--config``,
    ``--checkpoint``, ``--device``, ``--score-thr``, ``--batch-size``, ``--precision``, ``--pixel-spacing``,
    ``--iou-thr``, ``--max-gap``, ``--min-slices``, ``--no-progress``, ``--cfg-options``."""
    parser.add_argument('--config', required=True, help='model config (its test pipeline '
                        'defines the N-slice input)')
    parser.add_argument('--checkpoint', required=True, help='model weights (.pth)')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--score-thr', type=float, default=0.5,
                        help='smallest per-slice detection score kept and linked')
    parser.add_argument('--batch-size', type=int, default=4, help='slices per forward pass')
    parser.add_argument('--precision', choices=('auto', 'fp32', 'bf16', 'fp16'), default='auto',
                        help='network arithmetic: auto = fp16 on CUDA, bf16 on CPUs with '
                        'AVX512_BF16 or AMX, fp32 elsewhere')
    parser.add_argument('--pixel-spacing', type=float, default=None,
                        help='resample slices in-plane to this many mm/px before the model '
                        "(default: the config's volume_inference.pixel_spacing, else only "
                        "the config's test Resize)")
    parser.add_argument('--iou-thr', type=float, default=0.3,
                        help='IoU linking boxes of nearby slices into one lesion')
    parser.add_argument('--max-gap', type=int, default=1,
                        help='slices without a box that one lesion may bridge')
    parser.add_argument('--min-slices', type=int, default=1,
                        help='fewest slices of a reported lesion candidate')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config keys as `mim test` does, e.g. '
                        'test_dataloader.dataset.pipeline.1.scale="(160,160)"')


def add_viewer_file_arguments(parser: argparse.ArgumentParser, default: str,
                              where: str) -> None:
    """Add the viewer-file options shared with ``mp3d-detect-volumes``: ``--formats``
    (default ``default``; the files go ``where``) and ``--label-score-thr``."""
    parser.add_argument('--formats', default=default,
                        help=f'viewer files {where}, comma-separated: slicer (lesions.mrk.json), '
                        'nifti (lesion_labels.nii.gz + .json), dicom-sr (lesions_sr.dcm, DICOM '
                        "input only), html (report.html); 'all': every one that applies, "
                        "'none'")
    parser.add_argument('--label-score-thr', type=float, default=0.0,
                        help='the NIfTI label maps label the candidates scoring at least this')


def check_detection_arguments(parser: argparse.ArgumentParser,
                              args: argparse.Namespace) -> None:
    """Exit with status 2 (``parser.error``) on an out-of-range option of
    :func:`add_detection_arguments`."""
    checks = [(args.batch_size >= 1, '--batch-size must be >= 1'),
              (0.0 <= args.score_thr <= 1.0, '--score-thr must be in [0, 1]'),
              (0.0 < args.iou_thr <= 1.0, '--iou-thr must be in (0, 1]'),
              (args.max_gap >= 0, '--max-gap must be >= 0'),
              (args.min_slices >= 1, '--min-slices must be >= 1'),
              (args.pixel_spacing is None or args.pixel_spacing > 0,
               '--pixel-spacing must be > 0')]
    for ok, message in checks:
        if not ok:
            parser.error(message)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('input', help='CT volume file or DICOM series folder')
    parser.add_argument('--out', required=True,
                        help='output folder: missing or empty, or with --overwrite an earlier '
                        "run's results (replaced once the new ones are complete)")
    parser.add_argument('--overwrite', action='store_true',
                        help="replace an earlier run's results in --out")
    add_detection_arguments(parser)
    parser.add_argument('--top-k-overlays', type=int, default=10,
                        help='draw overlays of this many best candidates')
    add_viewer_file_arguments(parser, default='all', where='in DIR')
    args = parser.parse_args(argv)
    check_detection_arguments(parser, args)
    if args.top_k_overlays < 0:
        parser.error('--top-k-overlays must be >= 0')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # mmengine imports the deprecated pkg_resources: keep stderr for the user's messages
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from mp3d_mmdet.volume import (InferenceSetupError, VolumeInputError,
                                 VolumeLesionDetector, detect_lesions_in_volume,
                                 load_inference_config, parse_output_formats,
                                 prepare_volume_output_dir, read_ct_volume,
                                 write_volume_outputs)
    try:  # before any inference: an unusable --out or --formats fails at once
        formats = parse_output_formats(args.formats, is_dicom=osp.isdir(args.input))
        staged = prepare_volume_output_dir(args.out, args.overwrite, option='--out')
    except ValueError as error:
        print(f'{PROG}: error: {error}', file=sys.stderr)
        return 1
    except OSError as error:
        print(f'{PROG}: error: --out {args.out}: {error.strerror or error}', file=sys.stderr)
        return 1
    try:
        cfg = load_inference_config(args.config, args.cfg_options)
        start = time.perf_counter()
        volume = read_ct_volume(args.input)
        read_seconds = time.perf_counter() - start
        for warning in volume.warnings:
            print(f'{PROG}: warning: {warning}', file=sys.stderr)
        detector = VolumeLesionDetector(cfg, args.checkpoint, args.device, args.pixel_spacing,
                                        args.precision)
        result = detect_lesions_in_volume(
            volume, detector=detector, batch_size=args.batch_size, score_thr=args.score_thr,
            iou_thr=args.iou_thr, max_gap=args.max_gap, min_slices=args.min_slices,
            progress=not args.no_progress)
        result.timings = dict(read=read_seconds, **result.timings)
        for warning in result.warnings[len(volume.warnings):]:
            print(f'{PROG}: warning: {warning}', file=sys.stderr)
        paths = write_volume_outputs(result, staged, args.top_k_overlays, formats=formats,
                                     label_score_thr=args.label_score_thr)
    except (VolumeInputError, InferenceSetupError) as error:
        print(f'{PROG}: error: {error}', file=sys.stderr)
        return 1
    except OSError as error:  # disk full ...: the earlier contents of --out are kept
        print(f'{PROG}: error: {error.strerror or error}: {error.filename or args.out} '
              f'(nothing written to {args.out})', file=sys.stderr)
        return 1
    finally:
        staged.discard()  # no-op after a successful commit
    num_overlays = min(args.top_k_overlays, len(result.candidates))
    viewer = ''.join(f', {paths[name]}' for name in formats)
    print(f'{PROG}: {volume.num_slices} slices, {result.detections.num_detections} boxes '
          f'>= {args.score_thr:g}, {len(result.candidates)} lesion candidates; wrote '
          f"{paths['json']}, {paths['csv']}{viewer} and {num_overlays} overlays in "
          f"{paths['overlays']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())

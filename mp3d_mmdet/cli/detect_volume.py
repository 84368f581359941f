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
files): only files the earlier run wrote, unchanged (listed in DIR/.mp3d_outputs.json), and
never the input, config or checkpoint. DIR is checked before inference starts, and nothing
is written to it if the run fails. Warnings about the input (reorientation, intensities
that do not look like HU, edge-slice replication ...) go to stderr and into detections.json.
Unusable input, config, checkpoint or device: a one-line error on stderr and exit status 1
(2 for bad command-line arguments).

Many volumes (a list file, a folder, DeepLesion sub-volumes) into one resumable results
file: ``mp3d-detect-volumes`` (:mod:`mp3d_mmdet.cli.detect_volumes`).
"""
import argparse
import os.path as osp
import sys
import time
import warnings
from typing import List, Optional

from .common import (CliError, add_detection_arguments, add_viewer_file_arguments,
                     check_detection_arguments, make_parser, os_error_message, run_command,
                     warn)

PROG = 'mp3d-detect-volume'


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = make_parser(PROG, __doc__.split('\n\n')[0])
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
    """Detect and write the results; returns the exit status
    (:func:`~mp3d_mmdet.cli.common.run_command`)."""
    args = parse_args(argv)
    return run_command(PROG, lambda: detect_volume(args))


def detect_volume(args: argparse.Namespace) -> None:
    """Detect in the volume :func:`parse_args` describes and write DIR (all or nothing).

    Raises:
        CliError: --out cannot be written (named with the reason).
        ValueError: unusable input, config, checkpoint, device or --formats.
    """
    from mp3d_mmdet.volume import (VolumeLesionDetector, detect_lesions_in_volume,
                                   load_inference_config, parse_output_formats,
                                   prepare_volume_output_dir, read_ct_volume,
                                   writable_output_formats, write_volume_outputs)
    try:  # before any inference: an unusable --out or --formats fails at once
        formats = parse_output_formats(args.formats, is_dicom=osp.isdir(args.input))
        with warnings.catch_warnings():  # reported below as one line
            warnings.simplefilter('ignore')
            staged = prepare_volume_output_dir(args.out, args.overwrite, option='--out',
                                               inputs=[args.input, args.config,
                                                       args.checkpoint])
        if staged.restored is not None:
            warn(PROG, staged.restored)
    except OSError as exc:
        raise CliError(f'--out {args.out}: {exc.strerror or exc}') from exc
    try:
        cfg = load_inference_config(args.config, args.cfg_options)
        start = time.perf_counter()
        volume = read_ct_volume(args.input)
        read_seconds = time.perf_counter() - start
        for warning in volume.warnings:
            warn(PROG, warning)
        # an SR that cannot be written: refused before inference when asked for by name,
        # otherwise skipped with one warning (ValueError: one line, exit 1)
        formats, skipped = writable_output_formats(volume, formats,
                                                   explicit='dicom-sr' in args.formats.lower())
        if skipped is not None:
            warn(PROG, skipped)
        detector = VolumeLesionDetector(cfg, args.checkpoint, args.device, args.pixel_spacing,
                                        args.precision)
        result = detect_lesions_in_volume(
            volume, detector=detector, batch_size=args.batch_size, score_thr=args.score_thr,
            iou_thr=args.iou_thr, max_gap=args.max_gap, min_slices=args.min_slices,
            progress=not args.no_progress)
        result.timings = dict(read=read_seconds, **result.timings)
        for warning in result.warnings[len(volume.warnings):]:
            warn(PROG, warning)
        paths = write_volume_outputs(result, staged, args.top_k_overlays, formats=formats,
                                     label_score_thr=args.label_score_thr)
    except OSError as exc:  # disk full ...: the earlier contents of --out are kept
        raise CliError(f'{os_error_message(exc, args.out)} (nothing written to {args.out})') \
            from exc
    finally:
        staged.discard()  # no-op after a successful commit
    num_overlays = min(args.top_k_overlays, len(result.candidates))
    viewer = ''.join(f', {paths[name]}' for name in formats)
    print(f'{PROG}: {volume.num_slices} slices, {result.detections.num_detections} boxes '
          f'>= {args.score_thr:g}, {len(result.candidates)} lesion candidates; wrote '
          f"{paths['json']}, {paths['csv']}{viewer} and {num_overlays} overlays in "
          f"{paths['overlays']}")


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
"""Detect lesions in many CT volumes into one resumable results file, OUT/detections_3d.jsonl.

    mp3d-detect-volumes --list volumes.txt --config CFG --checkpoint CKPT --out results/
    mp3d-detect-volumes --folder scans/ --config CFG --checkpoint CKPT --out results/
    mp3d-detect-volumes --deeplesion DeepLesion/ --split test --config CFG --checkpoint CKPT \\
        --out results/lens_test [--device cuda] [--score-thr 0.05]

Inputs: --list FILE (one volume file or DICOM series folder per line, relative to the list
file's folder; blank lines and '#' lines skipped), --folder DIR (every .nii, .nii.gz, .mha,
.mhd, .nrrd, .nhdr file and every DICOM series sub-folder in it), or --deeplesion ROOT (every
run of consecutive slice files of the release, named like 000001_01_01_103-115; --split
train/val/test keeps the series of that split). Volume names (DeepLesion sub-volume name, file
name without suffix, DICOM folder name) must be unique.

Each volume is read, detected and linked exactly as by mp3d-detect-volume, and one JSON line
{"name", "source", "shape_xyz", "spacing_mm_xyz", "z_offset", "boxes": [[x1, y1, z1, x2, y2, z2,
score], ...]} is appended (and flushed to disk) as it finishes, after a header line recording
the model settings (mp3d_mmdet.volume.results_file). Rerunning the same command
resumes: finished volumes are skipped, a line cut short by an interruption is redone. A
results file of other settings (config, checkpoint, score threshold, linking ...) is refused
unless --restart is given, which starts a new file in its place (discarding its lines; nothing
else in OUT is touched). Unusable input list, config, checkpoint, device or volume: a one-line
error and exit status 1 (--keep-going skips unreadable volumes, names them, and exits 1 at the
end); 130 after Ctrl-C (rerun to resume); 2 for bad command-line arguments.

--formats slicer,nifti,dicom-sr,html (or 'all'; default 'none') also writes each volume's
result folder OUT/volumes/<name>/ as mp3d-detect-volume does (detections.json, lesions.csv,
overlays of the top 3 candidates and the viewer files asked for; dicom-sr only when every
input is a DICOM series) before its line is appended, and with html an index page
OUT/index.html linking every volume's report (an OUT/index.html of another origin is never
replaced: refused before detection).
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import Callable, List, Optional

from ..volume.distributed import LAUNCHERS
from .common import (CliError, add_detection_arguments, add_split_argument,
                     add_viewer_file_arguments, check_detection_arguments, make_parser,
                     run_command, warn)

PROG = 'mp3d-detect-volumes'


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = make_parser(PROG, __doc__.split('\n\n')[0])
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument('--list', metavar='FILE',
                        help="text file: one volume file or DICOM folder per line ('#' "
                        'comments; relative to the file)')
    inputs.add_argument('--folder', metavar='DIR',
                        help='folder of volume files and/or DICOM series sub-folders')
    inputs.add_argument('--deeplesion', metavar='ROOT',
                        help='DeepLesion release folder (DL_info.csv, Images_png/): its '
                        'sub-volumes')
    add_split_argument(parser, None, 'with --deeplesion: only the series of this split '
                       '(default: all)')
    parser.add_argument('--out', required=True,
                        help='output folder of detections_3d.jsonl (created if missing; an '
                        'existing results file of the same settings is resumed)')
    parser.add_argument('--restart', action='store_true',
                        help='start a new results file even if --out holds one (its lines '
                        'are discarded)')
    parser.add_argument('--keep-going', action='store_true',
                        help='skip volumes that cannot be read (named on stderr; exit status '
                        '1 at the end) instead of stopping')
    add_detection_arguments(parser)
    parser.add_argument('--launcher', choices=LAUNCHERS,
                        default='none', help='share the volumes among the processes started '
                        'by torchrun (pytorch), srun (slurm) or mpirun (mpi), one results file')
    add_viewer_file_arguments(
        parser, default='none', where='per volume in OUT/volumes/<name>/ beside its '
        'detections.json, lesions.csv and overlays (html: also OUT/index.html; dicom-sr: every '
        "input a DICOM series; 'none': only the results file)")
    args = parser.parse_args(argv)
    check_detection_arguments(parser, args)
    if args.split is not None and args.deeplesion is None:
        parser.error('--split needs --deeplesion')
    return args


def _volume_folder(out: str, name: str) -> str:
    return osp.join(out, 'volumes', name)


def _write_index(out: str, results_path: str) -> None:
    """``OUT/index.html``: every finished volume of the results file that has a report."""
    from mp3d_mmdet.volume import HtmlIndexEntry, read_volume_detections, write_html_index
    _, records = read_volume_detections(results_path)
    entries = []
    for name, record in records.items():
        report = osp.join(_volume_folder(out, name), 'report.html')
        scores = record['boxes'][:, 6]
        entries.append(HtmlIndexEntry(
            name, report if osp.isfile(report) else None, len(scores),
            float(scores.max()) if len(scores) else None,
            '' if osp.isfile(report) else 'no report (detected without --formats html)'))
    write_html_index(entries, osp.join(out, 'index.html'))


def _collect_inputs(args: argparse.Namespace, report: Callable[[str], None]) -> list:
    """The batch's VolumeInputs; the listing functions' warnings go to ``report``."""
    from mp3d_mmdet.volume import (volume_inputs_from_deeplesion, volume_inputs_from_folder,
                                   volume_inputs_from_list_file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        if args.list is not None:
            inputs = volume_inputs_from_list_file(args.list)
        elif args.folder is not None:
            inputs = volume_inputs_from_folder(args.folder)
        else:
            inputs = volume_inputs_from_deeplesion(args.deeplesion, args.split)
    for item in caught:
        if issubclass(item.category, UserWarning):
            report(str(item.message))
    return inputs


def main(argv: Optional[List[str]] = None) -> int:
    """Detect in every volume not done yet; returns the exit status
    (:func:`~mp3d_mmdet.cli.common.run_command`; 130 after Ctrl-C, rerun to resume)."""
    args = parse_args(argv)
    return run_command(PROG, lambda: detect_volumes(args),
                       interrupted=f'finished volumes are in {args.out}: rerun the same command '
                       'to resume')


def detect_volumes(args: argparse.Namespace) -> None:
    """Detect in the volumes :func:`parse_args` describes into the results file (and the
    volume folders --formats asks for).

    Raises:
        CliError: volumes could not be read (with --keep-going; the others are done).
        ValueError: unusable inputs, config, checkpoint, device, --formats or results file.
    """
    from mp3d_mmdet.volume import (VolumeLesionDetector, batch_settings, check_html_index_path,
                                   check_unique_names, detect_volume_batch, init_launcher,
                                   load_inference_config,
                                   parse_output_formats, volume_detect_function,
                                   write_volume_outputs)

    def report(message: str) -> None:
        warn(PROG, message)

    def make_detect():
        detector = VolumeLesionDetector(cfg, args.checkpoint, device, args.pixel_spacing,
                                        args.precision)  # its warnings: reported by the batch
        return volume_detect_function(detector, batch_size=args.batch_size,
                                      score_thr=args.score_thr, iou_thr=args.iou_thr,
                                      max_gap=args.max_gap, min_slices=args.min_slices)

    def write_volume_files(item, result) -> None:
        write_volume_outputs(result, _volume_folder(args.out, item.name), top_k_overlays=3,
                             overwrite=True, formats=formats,
                             label_score_thr=args.label_score_thr)

    # an error (a missing path, a full disk ...) leaves the finished lines in the results file
    device = init_launcher(args.launcher, args.device)
    inputs = _collect_inputs(args, report)
    check_unique_names(inputs)
    formats = parse_output_formats(
        args.formats, is_dicom=bool(inputs) and all(
            item.subvolume is None and osp.isdir(item.source) for item in inputs))
    if 'html' in formats:  # a page of the user's is refused before any detection
        check_html_index_path(osp.join(args.out, 'index.html'), 'OUT/index.html')
    cfg = load_inference_config(args.config, args.cfg_options)
    settings = batch_settings(args.config, args.checkpoint, args.cfg_options,
                              args.score_thr, args.pixel_spacing, args.iou_thr,
                              args.max_gap, args.min_slices, cfg=cfg,
                              precision=args.precision, device=device)
    summary = detect_volume_batch(
        inputs, args.out, settings, make_detect, restart=args.restart,
        keep_going=args.keep_going, progress=not args.no_progress, report=report,
        restart_option='--restart', on_result=write_volume_files if formats else None)
    if 'html' in formats and summary.is_main:
        _write_index(args.out, summary.path)
    if not summary.is_main:
        return
    print(f'{PROG}: {len(summary.done)} volume(s) detected, {len(summary.skipped)} already '
          f'done, {len(summary.failed)} unreadable; results: {summary.path}')
    if summary.failed:
        raise CliError(f'{len(summary.failed)} of {len(inputs)} volume(s) could not be read '
                       f'(e.g. {next(iter(summary.failed))}); rerun after fixing them to '
                       'complete the results')


if __name__ == '__main__':
    sys.exit(main())

"""What every command of :mod:`mp3d_mmdet.cli` shares: the exit statuses, the lines on
stderr, the parser and the argument groups of more than one command.

A command's ``main(argv)`` parses its arguments (argparse exits with status 2 on unusable
ones) and hands its work to :func:`run_command`, which turns every failure into one line on
stderr, prefixed by the command's name, and an exit status:

======  ====================================================================================
status  when
======  ====================================================================================
0       the work is done
1       :class:`CliError` (with its own status), ``ValueError`` or ``OSError``: one line
        ``<prog>: error: <message>`` (an ``OSError`` of a file as ``<reason>: <path>``)
130     Ctrl-C (``KeyboardInterrupt``): ``<prog>: interrupted[; <what to do>]``
======  ====================================================================================
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings
from typing import Any, Callable, Optional

from mmengine.config import DictAction
from tqdm import tqdm

from ..datasets import SPLIT_CODES
from ..volume.inference.precision import PRECISIONS

#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED_STATUS = 130


class CliError(Exception):
    """A failure a command reports as one error line (:func:`print_error`) with exit status
    ``status``.

    Args:
        message: the line's text, naming the file, row or argument at fault.
        status: the exit status (1 unless the command documents another).
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def print_error(prog: str, message: str, status: int = 1) -> int:
    """Print the error line of command ``prog`` on stderr, above any progress bar; returns
    ``status``."""
    tqdm.write(f'{prog}: error: {message}', file=sys.stderr)
    return status


def warn(prog: str, message: str) -> None:
    """Print ``<prog>: warning: <message>`` on stderr, above any progress bar."""
    tqdm.write(f'{prog}: warning: {message}', file=sys.stderr)


def os_error_message(exc: OSError, path: Optional[str] = None) -> str:
    """``<reason>: <path>`` for an ``OSError`` about a file (its own file name, else ``path``),
    the error's text otherwise (an ``OSError`` raised with a message of its own)."""
    where = exc.filename or path
    if not where:
        return str(exc)
    return f'{exc.strerror or exc}: {where}'


def run_command(prog: str, command: Callable[[], Any], interrupted: str = '') -> int:
    """Run a command's work with the exit statuses of the module doc; returns the status.

    Args:
        prog: the command's name, the prefix of its stderr lines.
        command: the work, called without arguments; its return value is not used.
        interrupted: what to do after Ctrl-C, appended to the ``interrupted`` line.

    Returns:
        0 when ``command`` returned, 1 (or the :class:`CliError`'s status) after an error
        line, 130 after Ctrl-C.
    """
    # mmengine imports the deprecated pkg_resources: keep stderr for the command's own lines
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    try:
        command()
    except CliError as error:
        return print_error(prog, str(error), error.status)
    except ValueError as error:
        return print_error(prog, str(error))
    except OSError as error:
        return print_error(prog, os_error_message(error))
    except KeyboardInterrupt:
        tqdm.write(f'{prog}: interrupted' + (f'; {interrupted}' if interrupted else ''),
                   file=sys.stderr)
        return INTERRUPTED_STATUS
    return 0


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of command ``prog``; the help shows every option's default."""
    return argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def write_json_summary(path: str, summary: Any) -> None:
    """Write ``summary`` to the JSON file ``path`` (its folder created; the file replaced
    only once complete)."""
    from ..utils.safe_files import atomic_write
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    with atomic_write(path) as handle:
        json.dump(summary, handle, indent=2)


# ------------------------------------------------------------------------- argument groups
def score_threshold(text: str) -> float:
    """An argparse ``type``: a detection score threshold, a number in [0, 1] (NaN refused:
    it would compare false with every score)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise argparse.ArgumentTypeError(f'must be a number in [0, 1], got {text!r}')
    return value


def add_split_argument(parser: argparse.ArgumentParser, default: Optional[str],
                       help: str) -> None:
    """Add ``--split`` (a DeepLesion split name: train, val or test)."""
    parser.add_argument('--split', default=default, choices=list(SPLIT_CODES), help=help)


def add_cfg_options_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options`` (config keys overridden as ``mim train`` / ``mim test`` do)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config keys as `mim train` / `mim test` do '
                        '(KEY=VALUE ...)')


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-progress`` (no progress bar)."""
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def add_hit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the rule of a detection hitting a ground-truth box: ``--iou-thr`` and
    ``--continuous-iou``."""
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU threshold of a hit')
    parser.add_argument('--continuous-iou', action='store_true',
                        help='IoU in continuous coordinates instead of the +1-pixel box widths '
                        "of the 'deeplesion' FROC protocol (the 'mp3d' protocol's IoU is "
                        'continuous already)')


def add_detection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model and inference options of the volume detection commands: ``--config``,
    ``--checkpoint``, ``--device``, ``--score-thr``, ``--batch-size``, ``--precision``,
    ``--pixel-spacing``,
    ``--iou-thr``, ``--max-gap``, ``--min-slices``, ``--no-progress``, ``--cfg-options``
    (checked by :func:`check_detection_arguments`)."""
    parser.add_argument('--config', required=True, help='model config (its test pipeline '
                        'defines the N-slice input)')
    parser.add_argument('--checkpoint', required=True, help='model weights (.pth)')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--score-thr', type=score_threshold, default=0.5,
                        help='smallest per-slice detection score kept and linked')
    parser.add_argument('--batch-size', type=int, default=4, help='slices per forward pass')
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
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
    add_progress_argument(parser)
    add_cfg_options_argument(parser)


def check_detection_arguments(parser: argparse.ArgumentParser,
                              args: argparse.Namespace) -> None:
    """Exit with status 2 (``parser.error``) on an out-of-range option of
    :func:`add_detection_arguments`."""
    checks = [(args.batch_size >= 1, '--batch-size must be >= 1'),
              (0.0 < args.iou_thr <= 1.0, '--iou-thr must be in (0, 1]'),
              (args.max_gap >= 0, '--max-gap must be >= 0'),
              (args.min_slices >= 1, '--min-slices must be >= 1'),
              (args.pixel_spacing is None or args.pixel_spacing > 0,
               '--pixel-spacing must be > 0')]
    for ok, message in checks:
        if not ok:
            parser.error(message)


def add_viewer_file_arguments(parser: argparse.ArgumentParser, default: str,
                              where: str) -> None:
    """Add the viewer-file options of the volume detection commands: ``--formats`` (default
    ``default``; the files go ``where``) and ``--label-score-thr``."""
    parser.add_argument('--formats', default=default,
                        help=f'viewer files {where}, comma-separated: slicer (lesions.mrk.json), '
                        'nifti (lesion_labels.nii.gz + .json), dicom-sr (lesions_sr.dcm, DICOM '
                        "input only), html (report.html); 'all': every one that applies, "
                        "'none'")
    parser.add_argument('--label-score-thr', type=score_threshold, default=0.0,
                        help='the NIfTI label maps label the candidates scoring at least this')

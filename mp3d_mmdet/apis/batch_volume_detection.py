"""Lesion detection over many CT volumes, into one resumable results file.

**Inputs** (:class:`VolumeInput`, each with a unique ``name``):

* :func:`volume_inputs_from_list_file` -- a text file with one volume path per line (a file
  or a DICOM series folder; relative paths are relative to the list file's folder; blank
  lines and lines starting with ``#`` are skipped);
* :func:`volume_inputs_from_folder` -- every supported volume file
  (:data:`~mp3d_mmdet.apis.SUPPORTED_FILE_SUFFIXES`) and every sub-folder holding a DICOM
  series in a folder (not recursive; hidden entries and other files are ignored, sub-folders
  without DICOM files are named in a warning);
* :func:`volume_inputs_from_deeplesion` -- the sub-volumes of a DeepLesion release
  (:mod:`mp3d_mmdet.apis.deeplesion_subvolumes`), optionally one split.

A volume's ``name`` is its DeepLesion sub-volume name, else the file name without its volume
suffix (``scan.nii.gz`` -> ``scan``; another suffix SimpleITK reads: the last one), or the
DICOM folder's name. Two inputs of one name are a one-line error.

**Results file** ``OUT/detections_3d.jsonl`` (:data:`RESULTS_FILE_NAME`), JSON Lines: a first
line ``{"header": {"format": "mp3d-volume-detections-3d", "format_version": 1,
"settings": {...}}}`` with the model settings (:func:`batch_settings`: config and a digest of
its model and test pipeline, checkpoint and its SHA-256, score threshold, in-plane spacing,
linking parameters), then one line per finished volume::

    {"name": str, "source": str, "shape_xyz": [X, Y, Z], "spacing_mm_xyz": [sx, sy, sz],
     "z_offset": int, "boxes": [[x1, y1, z1, x2, y2, z2, score], ...]}

``source`` is the absolute path read (file, DICOM folder, or DeepLesion series folder).
``boxes`` are the volume's 3D lesion candidates in its voxel indices (:func:`candidate_boxes_3d`:
``x``/``y`` the union of the in-plane extents of the candidate's linked boxes, continuous
pixel coordinates as the detector returns them; ``z1``/``z2`` its first and last slice,
inclusive; ``score`` its max score), by decreasing score. ``z_offset`` is the slice number of
voxel ``z = 0``: the first slice number of a DeepLesion sub-volume (so ``z + z_offset`` is the
whole-series slice number the LENS annotations use), 0 for other inputs.

**Resuming** (:class:`VolumeResultsFile`, :func:`detect_volume_batch`). Each volume's line is
appended, flushed and ``fsync``-ed when the volume is finished. A new run on the same folder
reads the existing lines and skips their volumes; a truncated last line (a run killed while
writing) is cut off with a warning and its volume redone. A file written with other settings
is refused (one line naming the first differing setting) unless ``restart`` is set, which
starts a new file in its place (its earlier lines are discarded; nothing else in the folder is
touched). A finished volume recorded from another source path than the input of that name now
is refused the same way. The folder is locked (``flock``) while a run appends to it, so a
second run on it fails at once instead of mixing lines.

:func:`read_volume_detections` reads a results file (boxes as ``(n, 7)`` float64 arrays);
every malformed line is a one-line ``ValueError`` naming the file and line.
"""
import hashlib
import json
import math
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..utils.safe_files import atomic_write
from .ct_volume import SUPPORTED_FILE_SUFFIXES, CTVolume, VolumeInputError, read_ct_volume
from .deeplesion_subvolumes import (DeepLesionSubvolume, format_examples,
                                    list_deeplesion_subvolumes, read_deeplesion_subvolume)
from .candidate_regions import candidate_box_3d
from .lesion_linking import LesionCandidate

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None

__all__ = [
    'RESULTS_FILE_NAME', 'RESULTS_FORMAT', 'RESULTS_FORMAT_VERSION', 'VolumeInput',
    'volume_name_of_path', 'volume_inputs_from_paths', 'volume_inputs_from_list_file',
    'volume_inputs_from_folder', 'volume_inputs_from_deeplesion', 'check_unique_names',
    'candidate_boxes_3d', 'volume_record', 'batch_settings', 'read_volume_detections',
    'VolumeResultsFile', 'BatchSummary', 'detect_volume_batch', 'volume_detect_function'
]

#: The results file a batch writes in its output folder.
RESULTS_FILE_NAME = 'detections_3d.jsonl'
#: ``header.format`` of the results file.
RESULTS_FORMAT = 'mp3d-volume-detections-3d'
#: ``header.format_version`` written (readers accept this version and older).
RESULTS_FORMAT_VERSION = 1

_RECORD_KEYS = ('name', 'source', 'shape_xyz', 'spacing_mm_xyz', 'z_offset', 'boxes')
_BOX_DECIMALS = 3


@dataclass(frozen=True)
class VolumeInput:
    """One volume of a batch.

    Attributes:
        name (str): unique name in the batch (the results file's key).
        source (str): absolute path read: a volume file, a DICOM series folder, or (for a
            DeepLesion sub-volume) the series folder.
        z_offset (int): slice number of voxel ``z = 0`` (0 unless a DeepLesion sub-volume).
        subvolume (DeepLesionSubvolume | None): set for DeepLesion sub-volumes.
        deeplesion_root (str | None): the release folder of ``subvolume``.
    """
    name: str
    source: str
    z_offset: int = 0
    subvolume: Optional[DeepLesionSubvolume] = None
    deeplesion_root: Optional[str] = None

    def read(self) -> CTVolume:
        """Read the volume (:func:`read_deeplesion_subvolume` or :func:`read_ct_volume`)."""
        if self.subvolume is not None:
            return read_deeplesion_subvolume(self.subvolume, self.deeplesion_root)
        return read_ct_volume(self.source)


def volume_name_of_path(path: str) -> str:
    """The batch name of a volume path: the file name without its volume suffix (a
    :data:`SUPPORTED_FILE_SUFFIXES` ending, else the last ``.suffix``), or a folder's name.

    ``'/data/case_01.nii.gz'`` -> ``'case_01'``; ``'/data/dicom/patient7/'`` -> ``'patient7'``.
    """
    base = osp.basename(osp.normpath(path))
    if osp.isdir(path):
        return base
    lower = base.lower()
    for suffix in sorted(SUPPORTED_FILE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[:-len(suffix)]
    stem, _ = osp.splitext(base)
    return stem or base


def volume_inputs_from_paths(paths: Iterable[str]) -> List[VolumeInput]:
    """Inputs for volume files / DICOM folders, named by :func:`volume_name_of_path`,
    ``source`` = the absolute path, ``z_offset`` 0. Paths are not checked here."""
    return [VolumeInput(name=volume_name_of_path(p), source=osp.abspath(p)) for p in paths]


def volume_inputs_from_list_file(list_file: str) -> List[VolumeInput]:
    """Inputs listed in a text file, one path per line (a volume file or a DICOM folder).

    Blank lines and lines whose first non-blank character is ``#`` are skipped; a path is
    taken as the whole line without surrounding blanks (so it may hold ``#`` or spaces);
    relative paths are relative to the list file's folder.

    Raises:
        FileNotFoundError: the list file, or a listed path, does not exist (one line naming
            the list file, line number and path).
        ValueError: the list names no path, or is not UTF-8 text.
    """
    try:
        with open(list_file, encoding='utf-8-sig') as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f'volume list file not found: {list_file}') from None
    except IsADirectoryError:
        raise ValueError(f'{list_file}: a folder, expected a volume list file') from None
    except UnicodeDecodeError as error:
        raise ValueError(f'{list_file}: not UTF-8 text ({error.reason} at byte '
                         f'{error.start})') from None
    base = osp.dirname(osp.abspath(list_file))
    paths = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith('#'):
            continue
        path = osp.join(base, osp.expanduser(text))
        if not osp.exists(path):
            raise FileNotFoundError(f'{list_file}: line {number}: no such file or directory: '
                                    f'{path}')
        paths.append(path)
    if not paths:
        raise ValueError(f'{list_file}: lists no volume (only blank lines and # comments)')
    return volume_inputs_from_paths(paths)


def _holds_dicom_series(folder: str) -> bool:
    import SimpleITK as sitk
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder))
    except RuntimeError:
        return False
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def volume_inputs_from_folder(folder: str) -> List[VolumeInput]:
    """Inputs for every volume in a folder: files ending in
    :data:`SUPPORTED_FILE_SUFFIXES` and sub-folders holding a DICOM series, by name order
    (not recursive; hidden entries and other files are ignored).

    Warns:
        UserWarning: one line naming the sub-folders skipped for holding no DICOM series.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: ``folder`` is a file, or holds no volume.
    """
    if not osp.exists(folder):
        raise FileNotFoundError(f'volume folder not found: {folder}')
    if not osp.isdir(folder):
        raise ValueError(f'{folder}: not a folder (give a folder of volumes, or a list file '
                         'with --list)')
    paths, no_dicom = [], []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith('.'):
            continue
        path = osp.join(folder, entry)
        if osp.isdir(path):
            if _holds_dicom_series(path):
                paths.append(path)
            else:
                no_dicom.append(entry)
        elif entry.lower().endswith(SUPPORTED_FILE_SUFFIXES):
            paths.append(path)
    if no_dicom:
        warnings.warn(f'{folder}: skipped {len(no_dicom)} sub-folder(s) holding no DICOM '
                      f'series ({format_examples(no_dicom)})', stacklevel=2)
    if not paths:
        hint = ('; it holds a DICOM series itself: list it in a list file, or use '
                'mp3d-detect-volume' if _holds_dicom_series(folder) else '')
        raise ValueError(f'{folder}: no volume found (files ending in '
                         f"{', '.join(SUPPORTED_FILE_SUFFIXES)}, or sub-folders holding a "
                         f'DICOM series){hint}')
    return volume_inputs_from_paths(paths)


def volume_inputs_from_deeplesion(root: str, split: Optional[str] = None) -> List[VolumeInput]:
    """Inputs for the sub-volumes of a DeepLesion release
    (:func:`~mp3d_mmdet.apis.list_deeplesion_subvolumes`; its warnings and errors apply):
    name = the sub-volume name, ``source`` = the series folder (absolute), ``z_offset`` = the
    first slice number.

    Raises:
        ValueError: the selection holds no sub-volume.
    """
    root = osp.abspath(root)
    subvolumes = list_deeplesion_subvolumes(root, split)
    if not subvolumes:
        which = 'no sub-volume' if split is None else f'no {split} sub-volume'
        raise ValueError(f'{root}: {which} found (slice files under Images_png/ of series '
                         'with DL_info.csv rows)')
    return [VolumeInput(name=s.name, source=s.series_dir(root), z_offset=s.first,
                        subvolume=s, deeplesion_root=root) for s in subvolumes]


def check_unique_names(inputs: Sequence[VolumeInput]) -> None:
    """Raise if two inputs share a name.

    Raises:
        ValueError: one line naming the name and both sources.
    """
    seen: Dict[str, str] = {}
    for item in inputs:
        if item.name in seen:
            raise ValueError(f'two volumes are named {item.name!r} ({seen[item.name]} and '
                             f'{item.source}); volume names (file names without suffix, DICOM '
                             'folder names) must be unique in one batch')
        seen[item.name] = item.source


def candidate_boxes_3d(candidates: Sequence[LesionCandidate]) -> np.ndarray:
    """3D boxes of lesion candidates (:func:`~mp3d_mmdet.apis.candidate_box_3d`) with scores.

    Args:
        candidates (Sequence[LesionCandidate]): from
            :func:`~mp3d_mmdet.apis.measure_lesion_candidates`.

    Returns:
        np.ndarray: float64 ``(n, 7)`` ``[x1, y1, z1, x2, y2, z2, score]``, by decreasing
        score (stable): ``x1, y1, x2, y2`` the union of the candidate's linked boxes,
        ``z1, z2`` = ``first_slice``, ``last_slice`` (inclusive); ``score`` = ``max_score``.
    """
    rows = [np.append(candidate_box_3d(c), float(c.max_score)) for c in candidates]
    array = np.asarray(rows, np.float64).reshape(-1, 7)
    return array[np.argsort(-array[:, 6], kind='stable')]


def volume_record(volume_input: VolumeInput, volume: CTVolume,
                  candidates: Sequence[LesionCandidate]) -> Dict[str, Any]:
    """The results-file line of a finished volume (schema: module docstring); box
    coordinates rounded to 3 decimals, scores as computed."""
    boxes = [[round(float(v), _BOX_DECIMALS) for v in row[:2]] + [int(row[2])] +
             [round(float(v), _BOX_DECIMALS) for v in row[3:5]] + [int(row[5]), float(row[6])]
             for row in candidate_boxes_3d(candidates)]
    depth, height, width = volume.hu.shape
    return {'name': volume_input.name, 'source': volume_input.source,
            'shape_xyz': [int(width), int(height), int(depth)],
            'spacing_mm_xyz': [float(s) for s in volume.spacing],
            'z_offset': int(volume_input.z_offset), 'boxes': boxes}


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def batch_settings(config: Any, checkpoint: Optional[str],
                   cfg_options: Optional[Dict[str, Any]] = None, score_thr: float = 0.5,
                   pixel_spacing: Optional[float] = None, iou_thr: float = 0.3,
                   max_gap: int = 1, min_slices: int = 1, cfg: Any = None) -> Dict[str, Any]:
    """The settings recorded in (and compared with) a results file's header.

    Args:
        config (str | Config): the model config as given (a path, or a loaded ``Config``).
        checkpoint (str | None): the weights file (None: the model's own initialisation).
        cfg_options (dict | None): ``--cfg-options`` overrides.
        score_thr, pixel_spacing, iou_thr, max_gap, min_slices: as for
            :func:`~mp3d_mmdet.apis.detect_lesions_in_volume`.
        cfg (Config | None): ``config`` already loaded with ``cfg_options``
            (:func:`~mp3d_mmdet.apis.load_inference_config`), to save loading it again.

    Returns:
        dict: JSON-ready: ``config`` (absolute path), ``config_sha256`` (digest of the loaded
        config's ``model``, test pipeline and ``volume_inference``: what inference uses, base
        files and overrides included), ``cfg_options``, ``checkpoint`` (absolute path),
        ``checkpoint_sha256`` (of the file), ``score_thr``, ``pixel_spacing``, ``iou_thr``,
        ``max_gap``, ``min_slices``.

    Raises:
        InferenceSetupError: the config cannot be loaded, the checkpoint is missing or not a
            PyTorch checkpoint.
    """
    from mmdet.utils import get_test_pipeline_cfg

    from ..utils.checkpoint_files import CheckpointFileError, check_checkpoint_file
    from .volume_lesion_detector import InferenceSetupError, load_inference_config
    if cfg is None:
        cfg = load_inference_config(config, cfg_options)
    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except Exception:  # reported by the detector when it is built
        pipeline = None
    used = dict(model=cfg.get('model'), test_pipeline=pipeline,
                volume_inference=cfg.get('volume_inference'))
    text = json.dumps(used, sort_keys=True, default=repr)
    checkpoint_digest = None
    if checkpoint is not None:
        try:
            check_checkpoint_file(checkpoint)
        except (FileNotFoundError, CheckpointFileError) as error:
            raise InferenceSetupError(str(error)) from None
        checkpoint_digest = _file_sha256(checkpoint)
    config_path = config if isinstance(config, str) else cfg.filename
    return dict(
        config=osp.abspath(config_path) if config_path else None,
        config_sha256=hashlib.sha256(text.encode('utf-8')).hexdigest(),
        cfg_options=json.loads(json.dumps(cfg_options or {}, sort_keys=True, default=repr)),
        checkpoint=None if checkpoint is None else osp.abspath(checkpoint),
        checkpoint_sha256=checkpoint_digest, score_thr=float(score_thr),
        pixel_spacing=None if pixel_spacing is None else float(pixel_spacing),
        iou_thr=float(iou_thr), max_gap=int(max_gap), min_slices=int(min_slices))


# ---------------------------------------------------------------------------------------------
# reading


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _record_problem(obj: Any) -> Optional[str]:
    """Why a parsed line is not a volume record, or None."""
    if not isinstance(obj, dict):
        return f'expected a JSON object, got {type(obj).__name__}'
    missing = [key for key in _RECORD_KEYS if key not in obj]
    if missing:
        return f'missing key(s) {missing} (a volume line has {list(_RECORD_KEYS)})'
    if not isinstance(obj['name'], str) or not obj['name']:
        return f"'name' must be a non-empty string, got {obj['name']!r}"
    if not isinstance(obj['source'], str):
        return f"'source' must be a string, got {obj['source']!r}"
    shape = obj['shape_xyz']
    if not isinstance(shape, list) or len(shape) != 3 or \
            not all(_is_int(v) and v >= 1 for v in shape):
        return f"'shape_xyz' must be 3 integers >= 1, got {shape!r}"
    spacing = obj['spacing_mm_xyz']
    if not isinstance(spacing, list) or len(spacing) != 3 or \
            not all(_is_number(v) and v > 0 for v in spacing):
        return f"'spacing_mm_xyz' must be 3 finite numbers > 0, got {spacing!r}"
    if not _is_int(obj['z_offset']):
        return f"'z_offset' must be an integer, got {obj['z_offset']!r}"
    boxes = obj['boxes']
    if not isinstance(boxes, list):
        return f"'boxes' must be a list, got {type(boxes).__name__}"
    for i, box in enumerate(boxes):
        if not isinstance(box, list) or len(box) != 7 or not all(_is_number(v) for v in box):
            return (f"box {i} must be 7 finite numbers [x1, y1, z1, x2, y2, z2, score], got "
                    f'{box!r}')
        if box[0] > box[3] or box[1] > box[4] or box[2] > box[5]:
            return f'box {i} has x1 > x2, y1 > y2 or z1 > z2: {box!r}'
    return None


def _header_problem(obj: Any) -> Optional[str]:
    if not isinstance(obj, dict) or set(obj) != {'header'} or not isinstance(obj['header'], dict):
        return 'expected the header line {"header": {...}} first'
    header = obj['header']
    if header.get('format') != RESULTS_FORMAT:
        return f"header format {header.get('format')!r} is not {RESULTS_FORMAT!r}"
    version = header.get('format_version')
    if not _is_int(version) or not 1 <= version <= RESULTS_FORMAT_VERSION:
        return (f'header format_version {version!r} is not supported (this version reads '
                f'1..{RESULTS_FORMAT_VERSION})')
    return None


@dataclass
class _ParsedResults:
    header: Dict[str, Any]
    records: Dict[str, Dict[str, Any]]
    lines: Dict[str, int]  # name -> line number
    complete_bytes: int  # bytes up to the end of the last complete, valid line
    dropped_line: Optional[int]  # line number of a dropped incomplete last line
    needs_newline: bool  # the last (valid) line lacks its newline


def _parse_results(path: str, drop_incomplete_last_line: bool) -> _ParsedResults:
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'volume detections file not found: {path}') from None
    if not data:
        raise ValueError(f'{path}: empty file, expected the header line {{"header": {{...}}}}')
    raw_lines = data.split(b'\n')
    ends_with_newline = raw_lines[-1] == b''
    if ends_with_newline:
        raw_lines.pop()
    header: Optional[Dict[str, Any]] = None
    records: Dict[str, Dict[str, Any]] = {}
    lines: Dict[str, int] = {}
    offset = 0
    complete_bytes = 0
    dropped = None
    for number, raw in enumerate(raw_lines, start=1):
        last = number == len(raw_lines)
        incomplete = last and not ends_with_newline
        offset_after = offset + len(raw) + (0 if incomplete else 1)
        problem = 'blank line' if not raw.strip() else None
        obj = None
        if problem is None:
            try:
                obj = json.loads(raw.decode('utf-8'))
            except UnicodeDecodeError as error:
                problem = f'not UTF-8 text (byte {raw[error.start]:#04x})'
            except json.JSONDecodeError as error:
                problem = f'not valid JSON ({error.msg} at column {error.colno})'
        if problem is None:
            problem = _header_problem(obj) if number == 1 else _record_problem(obj)
        if problem is not None:
            if incomplete and number > 1:
                if drop_incomplete_last_line:
                    dropped = number
                    break
                problem = (f'incomplete last line ({problem}): a run interrupted while '
                           'writing? rerun the batch detection on this folder to redo that '
                           'volume')
            raise ValueError(f'{path}: line {number}: {problem}')
        if number == 1:
            header = obj['header']
        else:
            name = obj['name']
            if name in records:
                raise ValueError(f'{path}: line {number}: volume {name!r} repeats line '
                                 f'{lines[name]}')
            obj = dict(obj, boxes=np.asarray(obj['boxes'], np.float64).reshape(-1, 7))
            records[name] = obj
            lines[name] = number
        complete_bytes = offset_after
        offset = offset_after
    assert header is not None
    return _ParsedResults(header=header, records=records, lines=lines,
                          complete_bytes=complete_bytes, dropped_line=dropped,
                          needs_newline=dropped is None and not ends_with_newline)


def read_volume_detections(path: str) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """Read a batch results file (``detections_3d.jsonl``, schema: module docstring).

    Args:
        path (str): the file.

    Returns:
        tuple[dict, dict[str, dict]]: the header (``format``, ``format_version``,
        ``settings``) and ``{name: record}`` in file order; each record holds the line's keys
        (extra keys are kept), ``boxes`` as a float64 ``(n, 7)`` array
        ``[x1, y1, z1, x2, y2, z2, score]``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty file, a missing or foreign header, a line that is not JSON or not
            a valid record (missing key, wrong type, a box of other than 7 finite numbers or
            with ``x1 > x2`` ...), a repeated name, or an incomplete last line (a run still
            writing or interrupted); one line naming the file and line number.
    """
    parsed = _parse_results(path, drop_incomplete_last_line=False)
    return parsed.header, parsed.records


# ---------------------------------------------------------------------------------------------
# writing


def _first_difference(old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    for key in list(new) + [k for k in old if k not in new]:
        if old.get(key, '<missing>') != new.get(key, '<missing>'):
            return f"{key}: {old.get(key, '<missing>')!r} there, {new.get(key, '<missing>')!r} now"
    return None


class VolumeResultsFile:
    """``OUT/detections_3d.jsonl`` opened for appending finished volumes (rules: module
    docstring). Use as a context manager, or call :meth:`close`.

    Args:
        out_dir (str): the output folder (created if missing).
        settings (dict): JSON-ready model settings (:func:`batch_settings`), recorded in the
            header of a new file and compared with the header of an existing one.
        restart (bool): start a new file even if one exists (its lines are discarded).
        restart_option (str): how ``restart`` is named in messages (e.g. ``'--restart'``).

    Attributes:
        path (str): the results file.
        header (dict): its header.
        records (dict[str, dict]): the volumes finished so far (read back as by
            :func:`read_volume_detections`, then each appended record).
        warnings (list[str]): e.g. the incomplete last line that was dropped.

    Raises:
        ValueError: ``out_dir`` is a file, another run holds the folder's lock, the existing
            file is malformed (one line naming file and line) or has other settings (without
            ``restart``).
        OSError: the folder or file cannot be created or written.
    """

    def __init__(self, out_dir: str, settings: Dict[str, Any], restart: bool = False,
                 restart_option: str = 'restart=True') -> None:
        settings = json.loads(json.dumps(settings, allow_nan=False))
        if osp.exists(out_dir) and not osp.isdir(out_dir):
            raise ValueError(f'output folder {out_dir} exists and is not a folder')
        os.makedirs(out_dir, exist_ok=True)
        self.path = osp.join(out_dir, RESULTS_FILE_NAME)
        self.restart_option = restart_option
        self.warnings: List[str] = []
        self._handle = None
        self._lock_fd: Optional[int] = None
        if fcntl is not None:
            self._lock_fd = os.open(out_dir, os.O_RDONLY)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._release_lock()
                raise ValueError(f'{out_dir} is locked by another batch detection run writing '
                                 f'{RESULTS_FILE_NAME}; wait for it or choose another output '
                                 'folder') from None
        try:
            self._open(settings, restart, restart_option)
        except BaseException:
            self.close()
            raise

    def _open(self, settings: Dict[str, Any], restart: bool, restart_option: str) -> None:
        path = self.path
        if osp.lexists(path) and not osp.isfile(path):
            raise ValueError(f'{path} exists and is not a file')
        new_header = dict(format=RESULTS_FORMAT, format_version=RESULTS_FORMAT_VERSION,
                          settings=settings)
        self.records: Dict[str, Dict[str, Any]] = {}
        self._lines: Dict[str, int] = {}
        if osp.isfile(path) and osp.getsize(path) > 0 and not restart:
            try:
                parsed = _parse_results(path, drop_incomplete_last_line=True)
            except ValueError as error:
                raise ValueError(f'{error}; pass {restart_option} to start a new results file '
                                 'there, or choose another output folder') from None
            difference = _first_difference(parsed.header.get('settings') or {}, settings)
            if difference is not None:
                raise ValueError(
                    f'{path} holds the results of {len(parsed.records)} volume(s) made with '
                    f'other settings ({difference}); pass {restart_option} to start a new '
                    'results file there (discarding them), or choose another output folder')
            self.header = parsed.header
            self.records = parsed.records
            self._lines = parsed.lines
            self._next_line = 2 + len(parsed.records)
            if parsed.dropped_line is not None:
                size = osp.getsize(path)
                os.truncate(path, parsed.complete_bytes)
                self.warnings.append(
                    f'{path}: dropped the incomplete last line {parsed.dropped_line} '
                    f'({size - parsed.complete_bytes} bytes; a run interrupted while '
                    'writing): its volume is done again')
            self._handle = open(path, 'a', encoding='utf-8')
            if parsed.needs_newline:
                self._write('\n')
        else:
            with atomic_write(path, encoding='utf-8') as handle:
                handle.write(json.dumps({'header': new_header}, allow_nan=False) + '\n')
            self.header = new_header
            self._next_line = 2
            self._handle = open(path, 'a', encoding='utf-8')

    def _write(self, text: str) -> None:
        self._handle.write(text)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def pending(self, inputs: Sequence[VolumeInput]) -> List[VolumeInput]:
        """The inputs not finished yet, in input order.

        Raises:
            ValueError: a finished volume of the same name was read from another source.
        """
        todo = []
        for item in inputs:
            record = self.records.get(item.name)
            if record is None:
                todo.append(item)
            elif record['source'] != item.source:
                raise ValueError(
                    f"{self.path}: line {self._lines[item.name]}: volume {item.name!r} was "
                    f"detected in {record['source']}, the input of that name now is "
                    f'{item.source}; pass {self.restart_option} to start a new results file, '
                    'or choose another output folder')
        return todo

    def append(self, record: Dict[str, Any]) -> None:
        """Append one volume's line (checked like a read line), flushed and fsync-ed.

        Raises:
            ValueError: an invalid record, or a name already in the file.
        """
        problem = _record_problem(record)
        if problem is None and record['name'] in self.records:
            problem = f"volume {record['name']!r} is already in the file"
        if problem is not None:
            raise ValueError(f'{self.path}: cannot append: {problem}')
        self._write(json.dumps(record, allow_nan=False) + '\n')
        self.records[record['name']] = dict(
            record, boxes=np.asarray(record['boxes'], np.float64).reshape(-1, 7))
        self._lines[record['name']] = self._next_line
        self._next_line += 1

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def close(self) -> None:
        """Close the file and release the folder's lock."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._release_lock()

    def __enter__(self) -> 'VolumeResultsFile':
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close()


@dataclass
class BatchSummary:
    """What :func:`detect_volume_batch` did.

    Attributes:
        path (str): the results file.
        done (list[str]): volumes detected and written by this run, in order.
        skipped (list[str]): inputs already in the file (not redone).
        failed (dict[str, str]): ``keep_going`` only: volumes that could not be read ->
            the one-line reason (not written; a rerun tries them again).
        not_in_inputs (list[str]): volumes in the file that are not among the inputs.
        warnings (list[str]): every warning reported during the run.
    """
    path: str
    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    not_in_inputs: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def volume_detect_function(detector: Any, batch_size: int = 4, score_thr: float = 0.5,
                           iou_thr: float = 0.3, max_gap: int = 1, min_slices: int = 1
                           ) -> Callable[[CTVolume], Any]:
    """``volume -> VolumeDetectionResult`` with a built
    :class:`~mp3d_mmdet.apis.VolumeLesionDetector` (no per-slice progress bar)."""
    from .volume_detection import detect_lesions_in_volume

    def detect(volume: CTVolume) -> Any:
        return detect_lesions_in_volume(volume, detector=detector, batch_size=batch_size,
                                        score_thr=score_thr, iou_thr=iou_thr, max_gap=max_gap,
                                        min_slices=min_slices, progress=False)
    return detect


def detect_volume_batch(inputs: Sequence[VolumeInput], out_dir: str, settings: Dict[str, Any],
                        make_detect: Callable[[], Callable[[CTVolume], Any]],
                        restart: bool = False, keep_going: bool = False,
                        progress: bool = True,
                        report: Optional[Callable[[str], None]] = None,
                        restart_option: str = 'restart=True',
                        on_result: Optional[Callable[[VolumeInput, Any], None]] = None
                        ) -> BatchSummary:
    """Detect lesions in every volume not yet in ``out_dir/detections_3d.jsonl`` and append
    one line per volume as it finishes (rules: module docstring).

    Args:
        inputs (Sequence[VolumeInput]): the volumes (unique names).
        out_dir (str): output folder (created if missing).
        settings (dict): model settings for the header (:func:`batch_settings`).
        make_detect (callable): ``() -> detect``, called once, before the first pending
            volume is read (not at all when every input is finished, so that a finished batch
            does not build the model); ``detect(volume: CTVolume)`` returns an object with
            ``candidates`` (list[LesionCandidate]) and ``warnings`` (list[str]), e.g.
            :func:`volume_detect_function`.
        restart (bool): start a new results file (see :class:`VolumeResultsFile`).
        keep_going (bool): a volume that cannot be read (``VolumeInputError``, ``ValueError``
            or ``OSError`` while reading) is reported and skipped instead of stopping the run.
        progress (bool): a tqdm bar over the volumes (finished ones counted from the start).
        report (callable | None): called with each warning line as it happens (the volume's
            and the results file's warnings, skipped volumes); they are also collected in
            :attr:`BatchSummary.warnings`.
        restart_option (str): how ``restart`` is named in messages.
        on_result (callable | None): called with each input and its detection result before
            the volume's line is appended (e.g. to write the volume's viewer files): an
            interruption in it leaves the volume to be redone.

    Returns:
        BatchSummary

    Raises:
        ValueError: duplicate names; see :class:`VolumeResultsFile` and
            :meth:`VolumeResultsFile.pending`; without ``keep_going``, an unreadable volume
            (finished volumes stay in the file).
        InferenceSetupError: from ``make_detect`` / ``detect``.
    """
    check_unique_names(inputs)
    summary: Optional[BatchSummary] = None

    def note(message: str) -> None:
        summary.warnings.append(message)
        if report is not None:
            report(message)

    with VolumeResultsFile(out_dir, settings, restart, restart_option) as results:
        summary = BatchSummary(path=results.path)
        for message in results.warnings:
            note(message)
        todo = results.pending(inputs)
        names = {item.name for item in inputs}
        summary.skipped = [item.name for item in inputs if item.name in results.records]
        summary.not_in_inputs = [name for name in results.records if name not in names]
        if not todo:
            return summary
        detect = make_detect()
        bar = tqdm(total=len(inputs), initial=len(inputs) - len(todo), desc='volumes',
                   unit='volume', disable=not progress, dynamic_ncols=True)
        try:
            for item in todo:
                bar.set_postfix_str(item.name, refresh=False)
                try:
                    volume = item.read()
                except (VolumeInputError, ValueError, OSError) as error:
                    if not keep_going:
                        raise
                    summary.failed[item.name] = str(error)
                    note(f'{item.name}: skipped, cannot be read: {error}')
                    bar.update(1)
                    continue
                result = detect(volume)
                for message in result.warnings:
                    note(message)
                if on_result is not None:
                    on_result(item, result)
                results.append(volume_record(item, volume, result.candidates))
                summary.done.append(item.name)
                bar.update(1)
        finally:
            bar.close()
    return summary

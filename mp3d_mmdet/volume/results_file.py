"""The results file of a batch: one JSON line per finished volume, resumable.

**Results file** ``OUT/detections_3d.jsonl`` (:data:`RESULTS_FILE_NAME`), JSON Lines: a first
line ``{"header": {"format": "mp3d-volume-detections-3d", "format_version": 1,
"settings": {...}}}`` with the model settings (:func:`batch_settings`: config and a digest of
its model and test pipeline, checkpoint and its SHA-256, score threshold, in-plane spacing,
linking parameters), then one line per finished volume::

    {"name": str, "source": str, "shape_xyz": [X, Y, Z], "spacing_mm_xyz": [sx, sy, sz],
     "z_offset": int, "boxes": [[x1, y1, z1, x2, y2, z2, score], ...],
     "input_stamp": {"files": int, "bytes": int, "mtime_ns": int}}

``source`` is the absolute path read (file, DICOM folder, or DeepLesion series folder).
``boxes`` are the volume's 3D lesion candidates in its voxel indices (:func:`candidate_boxes_3d`:
``x``/``y`` the union of the in-plane extents of the candidate's linked boxes, continuous
pixel coordinates as the detector returns them; ``z1``/``z2`` its first and last slice,
inclusive; ``score`` its max score), by decreasing score. ``z_offset`` is the slice number of
voxel ``z = 0``: the first slice number of a DeepLesion sub-volume (so ``z + z_offset`` is the
whole-series slice number the LENS annotations use), 0 for other inputs. ``input_stamp``
(:meth:`VolumeInput.stamp`, taken before the volume was read) is optional: files written
before it existed lack it.

**Resuming** (:class:`VolumeResultsFile`, :func:`detect_volume_batch`). Each volume's line is
appended, flushed and ``fsync``-ed when the volume is finished. A new run on the same folder
reads the existing lines and skips their volumes; a truncated last line (a run killed while
writing) is cut off with a warning and its volume redone. A file written with other settings
is refused (one line naming the first differing setting) unless ``restart`` is set, which
starts a new file in its place (its earlier lines are discarded; nothing else in the folder is
touched). A finished volume recorded from another source path than the input of that name now
is refused the same way. A finished volume whose input stamp differs from its files' now (they
changed since) is dropped from the file with a warning and detected again
(:meth:`VolumeResultsFile.pending`). The folder is locked (``flock``) while a run appends to
it, so a second run on it fails at once instead of mixing lines. At the end of a run the file
lists its volumes in input order (:meth:`VolumeResultsFile.finish`), however they were
resumed or shared among processes (:mod:`.distributed`).

:func:`read_volume_detections` reads a results file (boxes as ``(n, 7)`` float64 arrays);
every malformed line is a one-line ``ValueError`` naming the file and line.
"""
import json
import math
import os
import os.path as osp
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.json_files import loads_json
from ..utils.safe_files import atomic_write
from .inference.linking import LesionCandidate
from .inputs import VolumeInput
from .io.ct_volume import CTVolume
from .outputs.regions import candidate_box_3d

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None

__all__ = ['RESULTS_FILE_NAME', 'RESULTS_FORMAT', 'RESULTS_FORMAT_VERSION', 'candidate_boxes_3d',
           'volume_record', 'read_volume_detections', 'read_partial_results',
           'VolumeResultsFile']

#: The results file a batch writes in its output folder.
RESULTS_FILE_NAME = 'detections_3d.jsonl'
#: ``header.format`` of the results file.
RESULTS_FORMAT = 'mp3d-volume-detections-3d'
#: ``header.format_version`` written (readers accept this version and older).
RESULTS_FORMAT_VERSION = 1

_RECORD_KEYS = ('name', 'source', 'shape_xyz', 'spacing_mm_xyz', 'z_offset', 'boxes')
_STAMP_KEYS = ('files', 'bytes', 'mtime_ns')
_BOX_DECIMALS = 3


def candidate_boxes_3d(candidates: Sequence[LesionCandidate]) -> np.ndarray:
    """3D boxes of lesion candidates (:func:`~mp3d_mmdet.volume.candidate_box_3d`) with scores.

    Args:
        candidates: from
            :func:`~mp3d_mmdet.volume.measure_lesion_candidates`.

    Returns:
        Float64 ``(n, 7)`` ``[x1, y1, z1, x2, y2, z2, score]``, by decreasing
        score (stable): ``x1, y1, x2, y2`` the union of the candidate's linked boxes,
        ``z1, z2`` = ``first_slice``, ``last_slice`` (inclusive); ``score`` = ``max_score``.
    """
    rows = [np.append(candidate_box_3d(c), float(c.max_score)) for c in candidates]
    array = np.asarray(rows, np.float64).reshape(-1, 7)
    return array[np.argsort(-array[:, 6], kind='stable')]


def volume_record(volume_input: VolumeInput, volume: CTVolume,
                  candidates: Sequence[LesionCandidate],
                  stamp: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """The results-file line of a finished volume (schema: module docstring); box
    coordinates rounded to 3 decimals, scores as computed; ``input_stamp`` = ``stamp`` when
    given (:meth:`VolumeInput.stamp` taken before reading)."""
    boxes = [[round(float(v), _BOX_DECIMALS) for v in row[:2]] + [int(row[2])] +
             [round(float(v), _BOX_DECIMALS) for v in row[3:5]] + [int(row[5]), float(row[6])]
             for row in candidate_boxes_3d(candidates)]
    depth, height, width = volume.hu.shape
    return {'name': volume_input.name, 'source': volume_input.source,
            'shape_xyz': [int(width), int(height), int(depth)],
            'spacing_mm_xyz': [float(s) for s in volume.spacing],
            'z_offset': int(volume_input.z_offset), 'boxes': boxes,
            **({} if stamp is None else {'input_stamp': dict(stamp)})}


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
    stamp = obj.get('input_stamp', {key: 0 for key in _STAMP_KEYS})
    if not isinstance(stamp, dict) or sorted(stamp) != sorted(_STAMP_KEYS) or \
            not all(_is_int(v) and v >= 0 for v in stamp.values()):
        return f"'input_stamp' must map {list(_STAMP_KEYS)} to integers >= 0, got {stamp!r}"
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
    texts: Dict[str, str]  # name -> its line as written (without the newline)
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
    texts: Dict[str, str] = {}
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
                obj = loads_json(raw.decode('utf-8'))
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
            texts[name] = raw.decode('utf-8')
        complete_bytes = offset_after
        offset = offset_after
    assert header is not None
    return _ParsedResults(header=header, records=records, lines=lines, texts=texts,
                          complete_bytes=complete_bytes, dropped_line=dropped,
                          needs_newline=dropped is None and not ends_with_newline)


def read_volume_detections(path: str) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """Read a batch results file (``detections_3d.jsonl``, schema: module docstring).

    Args:
        path: the file.

    Returns:
        The header (``format``, ``format_version``,
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


def read_partial_results(path: str) -> Tuple[Dict[str, Any], Dict[str, str], Optional[str]]:
    """Read a results file as a resuming run does: an incomplete last line (a run killed
    while writing it) is left out.

    Returns:
        The header, ``{name: line text}`` in file order, and a warning naming the
        line left out (None when none was).

    Raises:
        FileNotFoundError, ValueError: as :func:`read_volume_detections`, except for the last
            line.
    """
    parsed = _parse_results(path, drop_incomplete_last_line=True)
    warning = None if parsed.dropped_line is None else (
        f'{path}: left out the incomplete last line {parsed.dropped_line} (a run interrupted '
        'while writing): its volume is done again')
    return parsed.header, parsed.texts, warning


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
        out_dir: the output folder (created if missing).
        settings: JSON-ready model settings (:func:`batch_settings`), recorded in the
            header of a new file and compared with the header of an existing one.
        restart: start a new file even if one exists (its lines are discarded).
        restart_option: how ``restart`` is named in messages (e.g. ``'--restart'``).
        file_name: the file in ``out_dir`` (another name: a process's part file of a
            distributed batch, :mod:`.distributed`).
        lock: lock ``out_dir`` (False: a part file, the folder being locked by the
            batch's first process).

    Attributes:
        path: the results file.
        header: its header.
        records: the volumes finished so far (read back as by
            :func:`read_volume_detections`, then each appended record).
        warnings: e.g. the incomplete last line that was dropped.

    Raises:
        ValueError: ``out_dir`` is a file, another run holds the folder's lock, the existing
            file is malformed (one line naming file and line) or has other settings (without
            ``restart``).
        OSError: the folder or file cannot be created or written.
    """

    def __init__(self, out_dir: str, settings: Dict[str, Any], restart: bool = False,
                 restart_option: str = 'restart=True', file_name: str = RESULTS_FILE_NAME,
                 lock: bool = True) -> None:
        settings = json.loads(json.dumps(settings, allow_nan=False))
        if osp.exists(out_dir) and not osp.isdir(out_dir):
            raise ValueError(f'output folder {out_dir} exists and is not a folder')
        os.makedirs(out_dir, exist_ok=True)
        self.path = osp.join(out_dir, file_name)
        self.restart_option = restart_option
        self.warnings: List[str] = []
        self._handle = None
        self._lock_fd: Optional[int] = None
        if fcntl is not None and lock:
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
        self._texts: Dict[str, str] = {}
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
            self._texts = parsed.texts
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
        """The inputs not finished yet, in input order: those without a record, and those
        whose files changed since their record was written (its ``input_stamp`` differs from
        :meth:`VolumeInput.stamp` now): their records are dropped from the file, each named
        in :attr:`warnings`.

        Raises:
            ValueError: a finished volume of the same name was read from another source.
        """
        todo, changed = [], []
        for item in inputs:
            record = self.records.get(item.name)
            if record is None:
                todo.append(item)
            elif record['source'] == item.source and 'input_stamp' in record and \
                    record['input_stamp'] != item.stamp():
                todo.append(item)
                changed.append(item.name)
                self.warnings.append(
                    f"{item.name}: {item.source} changed since it was detected "
                    f"({record['input_stamp']} then, {item.stamp()} now): detected again")
            elif record['source'] != item.source:
                raise ValueError(
                    f"{self.path}: line {self._lines[item.name]}: volume {item.name!r} was "
                    f"detected in {record['source']}, the input of that name now is "
                    f'{item.source}; pass {self.restart_option} to start a new results file, '
                    'or choose another output folder')
        if changed:
            self._rewrite([name for name in self._texts if name not in changed])
        return todo

    def merge(self, texts: Dict[str, str]) -> None:
        """Add finished volumes' lines (e.g. from part files: :func:`read_partial_results`);
        a line replaces the file's line of its volume. The file is rewritten atomically."""
        for name, text in texts.items():
            record = loads_json(text)
            self.records[name] = dict(
                record, boxes=np.asarray(record['boxes'], np.float64).reshape(-1, 7))
            self._texts[name] = text
        self._rewrite(list(self._texts))

    def finish(self, inputs: Sequence[VolumeInput]) -> None:
        """Put the file's volumes in input order (volumes not among ``inputs`` after them, in
        file order), rewriting it atomically only if they are not."""
        rank = {item.name: i for i, item in enumerate(inputs)}
        order = sorted(self._texts, key=lambda name: rank.get(name, len(rank)))
        if order != list(self._texts):
            self._rewrite(order)

    def _rewrite(self, names: Sequence[str]) -> None:
        """Replace the file by its header and the lines of ``names`` in that order."""
        self._handle.close()
        self._handle = None
        with atomic_write(self.path, encoding='utf-8') as handle:
            handle.write(json.dumps({'header': self.header}, allow_nan=False) + '\n')
            for name in names:
                handle.write(self._texts[name] + '\n')
        self._texts = {name: self._texts[name] for name in names}
        self.records = {name: self.records[name] for name in names}
        self._lines = {name: number for number, name in enumerate(names, start=2)}
        self._next_line = 2 + len(names)
        self._handle = open(self.path, 'a', encoding='utf-8')

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
        text = json.dumps(record, allow_nan=False)
        self._write(text + '\n')
        self._texts[record['name']] = text
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

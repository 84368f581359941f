"""Reader of DeepLesion's ``DL_info.csv`` (the official annotation file of the release).

The file has one row per annotated lesion and these 18 columns (multi-valued fields are
comma-separated numbers inside one quoted csv field)::

    File_name                  000001_01_01_109.png  (patient_study_series_slice)
    Patient_index              1
    Study_index                1
    Series_ID                  1
    Key_slice_index            109                   (= the slice file number)
    Measurement_coordinates    "x1, y1, x2, y2, x3, y3, x4, y4"  RECIST: long axis, short axis
    Bounding_boxes             "x1, y1, x2, y2"
    Lesion_diameters_Pixel_    "long, short"
    Normalized_lesion_location "x, y, z"             (0..1 position in the body)
    Coarse_lesion_type         1..8, -1 = unknown    (bone, abdomen, mediastinum, liver, lung,
                                                      kidney, soft tissue, pelvis)
    Possibly_noisy             0 / 1
    Slice_range                "first, last"         (slice files stored around the key slice)
    Spacing_mm_px_             "x, y, z"             (mm per pixel in x and y, slice interval)
    Image_size                 "width, height"
    DICOM_windows              "low, high"           (one or more HU window pairs)
    Patient_gender             M / F
    Patient_age                years (may be empty)
    Train_Val_Test             1 train, 2 val, 3 test

All pixel coordinates in the csv are 1-based (MATLAB); :class:`DLInfoRow` keeps them as
written -- the 0-based conversion happens in the dataset. ``Image_size`` is read as
``(width, height)``, the x-before-y order of every other field of the file (all real
DeepLesion images are square, so the order never matters there).
"""
import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.validation import box_size_problem, ct_spacing_problem
from ..utils.safe_files import atomic_write

__all__ = [
    'DL_INFO_COLUMNS', 'SPLIT_CODES', 'SPLIT_NAMES', 'LESION_TYPE_NAMES', 'DLInfoRow',
    'read_dl_info', 'write_dl_info', 'series_folder_name', 'slice_file_name', 'consecutive_runs',
    'subvolume_name', 'parse_subvolume_name', 'subvolume_z_offset', 'LesionsListedOnce'
]

DL_INFO_COLUMNS: Tuple[str, ...] = (
    'File_name', 'Patient_index', 'Study_index', 'Series_ID', 'Key_slice_index',
    'Measurement_coordinates', 'Bounding_boxes', 'Lesion_diameters_Pixel_',
    'Normalized_lesion_location', 'Coarse_lesion_type', 'Possibly_noisy', 'Slice_range',
    'Spacing_mm_px_', 'Image_size', 'DICOM_windows', 'Patient_gender', 'Patient_age',
    'Train_Val_Test')

#: split name -> ``Train_Val_Test`` code.
SPLIT_CODES: Dict[str, int] = {'train': 1, 'val': 2, 'test': 3}
#: ``Train_Val_Test`` code -> split name.
SPLIT_NAMES: Dict[int, str] = {code: name for name, code in SPLIT_CODES.items()}

#: ``Coarse_lesion_type`` code -> name (DeepLesion README; identifiers, so 'soft_tissue'): the
#: one lesion-type table of the plugin (the FROC metric's ``type_<name>`` breakdowns use it).
#: -1 = unknown (all training rows).
LESION_TYPE_NAMES: Dict[int, str] = {
    -1: 'unknown', 1: 'bone', 2: 'abdomen', 3: 'mediastinum', 4: 'liver', 5: 'lung',
    6: 'kidney', 7: 'soft_tissue', 8: 'pelvis'
}

_FILE_NAME_PATTERN = re.compile(r'^(\d+)_(\d+)_(\d+)_(\d+)\.png$')
_SUBVOLUME_NAME_PATTERN = re.compile(r'^(\d{6}_\d{2}_\d{2})_(\d{3,})-(\d{3,})$')


@dataclass(frozen=True)
class DLInfoRow:
    """One parsed, validated row of ``DL_info.csv`` (coordinates as written: 1-based pixels).

    Attributes:
        csv_row: 1-based line number in the file, header = line 1.
        file_name: e.g. ``'000001_01_01_109.png'``.
        patient_index, study_index, series_id, key_slice_index: ids of the key slice.
        measurement_coordinates: 8 values, RECIST long then short axis.
        bounding_box: ``(x1, y1, x2, y2)``, 1-based, ``x1 <= x2, y1 <= y2``.
        lesion_diameters_pixel: ``(long, short)`` in pixels.
        normalized_lesion_location: ``(x, y, z)``.
        coarse_lesion_type: 1..8 or -1.
        possibly_noisy: the ``Possibly_noisy`` flag.
        slice_range: ``(first, last)`` slice numbers stored.
        spacing_mm_px: ``(x, y, z)`` spacing in mm, all > 0.
        image_size: ``(width, height)``.
        dicom_windows: HU windows ``(low, high)``.
        patient_gender: as written.
        patient_age: None where the field is empty or NaN.
        train_val_test: 1, 2 or 3.
    """
    csv_row: int
    file_name: str
    patient_index: int
    study_index: int
    series_id: int
    key_slice_index: int
    measurement_coordinates: Tuple[float, ...]
    bounding_box: Tuple[float, ...]
    lesion_diameters_pixel: Tuple[float, ...]
    normalized_lesion_location: Tuple[float, ...]
    coarse_lesion_type: int
    possibly_noisy: bool
    slice_range: Tuple[int, int]
    spacing_mm_px: Tuple[float, ...]
    image_size: Tuple[int, int]
    dicom_windows: Tuple[Tuple[float, float], ...]
    patient_gender: str
    patient_age: Optional[float]
    train_val_test: int

    @property
    def series_folder(self) -> str:
        """Folder of the series under ``Images_png/``, e.g. ``'000001_01_01'``."""
        return self.file_name.rsplit('_', 1)[0]


def series_folder_name(patient_index: int, study_index: int, series_id: int) -> str:
    """``'<patient:06d>_<study:02d>_<series:02d>'``, the release's series folder name."""
    return f'{patient_index:06d}_{study_index:02d}_{series_id:02d}'


def slice_file_name(slice_index: int) -> str:
    """``'<slice:03d>.png'``, the release's slice file name inside a series folder."""
    return f'{slice_index:03d}.png'


def consecutive_runs(numbers: Sequence[int]) -> List[Tuple[int, int]]:
    """The maximal runs of consecutive integers, as ``(first, last)``, in increasing order.

    A DeepLesion series folder stores slices around its key slices only; each run of
    consecutive slice numbers in it is one *sub-volume* (the unit of the manual 3D test set).

    Args:
        numbers: slice numbers, any order, duplicates allowed.

    Returns:
        E.g. ``[1, 2, 3, 7, 8]`` -> ``[(1, 3), (7, 8)]``.
    """
    runs: List[Tuple[int, int]] = []
    for number in sorted(set(int(n) for n in numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def subvolume_name(series_folder: str, first: int, last: int) -> str:
    """``'<series folder>_<first:03d>-<last:03d>'``, the name of a sub-volume in DeepLesion's
    manual 3D test set (LENS), e.g. ``'000001_01_01_103-115'``."""
    return f'{series_folder}_{first:03d}-{last:03d}'


def parse_subvolume_name(name: str) -> Tuple[str, int, int]:
    """``'000001_01_01_103-115'`` -> ``('000001_01_01', 103, 115)``.

    Raises:
        ValueError: not ``<patient:06d>_<study:02d>_<series:02d>_<first:03d>-<last:03d>`` with
            ``first <= last``.
    """
    match = _SUBVOLUME_NAME_PATTERN.match(name)
    if match is None or int(match.group(2)) > int(match.group(3)):
        raise ValueError(f'{name!r} is not a DeepLesion sub-volume name '
                         '(<patient:06d>_<study:02d>_<series:02d>_<first:03d>-<last:03d>, '
                         'e.g. 000001_01_01_103-115)')
    return match.group(1), int(match.group(2)), int(match.group(3))


def subvolume_z_offset(name: str) -> int:
    """The slice number of voxel ``z = 0`` of a volume named ``name``: the first slice of a
    DeepLesion sub-volume name (``'000001_01_01_103-115'`` -> 103), 0 for any other name.

    The one ``z_offset`` rule: the batch inputs write it into the results file
    (:mod:`mp3d_mmdet.volume.inputs`), whatever the volume was read from (the release's PNGs,
    or a NIfTI written by ``write_deeplesion_subvolume_nifti`` and named after its
    sub-volume), and the 3D evaluation checks the results against it
    (:func:`mp3d_mmdet.datasets.lesions_3d.candidates_in_series_slices`).
    """
    try:
        return parse_subvolume_name(name)[1]
    except ValueError:
        return 0


class LesionsListedOnce:
    """The rule both annotation readers (``DL_info.csv`` and the official JSON) apply: each
    lesion is listed once.

    A lesion is a box on a key slice; two entries with the same key slice and the same box
    (compared in float32, the network's precision, 0-based ``[x1, y1, x2, y2]``) are one
    lesion listed twice, which the FROC would count twice. :meth:`add` raises on the second.

    Args:
        path: the annotation file, named in the message.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._first: Dict[Tuple[str, Tuple[float, ...]], str] = {}

    def add(self, key_slice: str, box_xyxy: Sequence[float], where: str) -> None:
        """Record one entry.

        Args:
            key_slice: ``'<series folder>/<slice:03d>.png'``, the key slice's PNG under
                ``Images_png/``.
            box_xyxy: ``(4,)`` 0-based ``[x1, y1, x2, y2]``.
            where: the entry in the file, e.g. ``'row 11'`` or ``'annotations[3] (id 9)'``.

        Raises:
            ValueError: the same box on the same key slice was added before; one line naming
                both entries, e.g. ``"DL_info.csv: row 11 repeats row 2 (the same box on key
                slice 000001_01_01/109.png); each lesion must be listed once"``.
        """
        key = (key_slice, tuple(np.asarray(box_xyxy, dtype=np.float32).tolist()))
        if key in self._first:
            raise ValueError(f'{self.path}: {where} repeats {self._first[key]} (the same box on '
                             f'key slice {key_slice}); each lesion must be listed once')
        self._first[key] = where


class _RowParser:
    """Parses the fields of one csv row, raising errors that name file, row and column."""

    def __init__(self, path: str, csv_row: int, fields: Dict[str, str]) -> None:
        self.path = path
        self.csv_row = csv_row
        self.fields = fields

    def error(self, column: str, message: str) -> ValueError:
        return ValueError(f"{self.path}: row {self.csv_row}, column '{column}': {message} "
                          f'(got {self.fields[column]!r})')

    def integer(self, column: str) -> int:
        text = self.fields[column].strip()
        try:
            value = float(text)
        except ValueError:
            raise self.error(column, 'expected an integer') from None
        if not math.isfinite(value) or value != int(value):
            raise self.error(column, 'expected an integer')
        return int(value)

    def numbers(self, column: str, count: Optional[int] = None,
                multiple_of: Optional[int] = None) -> Tuple[float, ...]:
        text = self.fields[column].strip().strip('[]()')
        parts = [p for p in re.split(r'[,\s]+', text) if p]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise self.error(column, 'expected comma-separated numbers') from None
        if count is not None and len(values) != count:
            raise self.error(column, f'expected {count} comma-separated numbers, '
                             f'found {len(values)}')
        if multiple_of is not None and (not values or len(values) % multiple_of):
            raise self.error(column, f'expected a non-empty multiple of {multiple_of} '
                             f'comma-separated numbers, found {len(values)}')
        if not all(math.isfinite(v) for v in values):
            raise self.error(column, 'expected finite numbers')
        return values

    def optional_number(self, column: str) -> Optional[float]:
        text = self.fields[column].strip()
        if text == '' or text.lower() == 'nan':
            return None
        try:
            return float(text)
        except ValueError:
            raise self.error(column, 'expected a number or an empty field') from None


def _parse_row(path: str, csv_row: int, fields: Dict[str, str]) -> DLInfoRow:
    p = _RowParser(path, csv_row, fields)
    file_name = fields['File_name'].strip()
    match = _FILE_NAME_PATTERN.match(file_name)
    if match is None:
        raise p.error('File_name', 'expected <patient>_<study>_<series>_<slice>.png')
    key_slice_index = p.integer('Key_slice_index')
    if int(match.group(4)) != key_slice_index:
        raise p.error('Key_slice_index',
                      f'does not match the slice number {int(match.group(4))} of File_name '
                      f'{file_name!r}')

    ids = {column: p.integer(column)
           for column in ('Patient_index', 'Study_index', 'Series_ID')}
    for column, group in zip(ids, match.groups()[:3]):
        if ids[column] != int(group):
            raise p.error(column, f'does not match File_name {file_name!r} '
                          '(<patient>_<study>_<series>_<slice>.png)')

    box = p.numbers('Bounding_boxes', 4)
    problem = box_size_problem([v - 1.0 for v in box])
    if problem:
        raise p.error('Bounding_boxes', f'expected x1 < x2 and y1 < y2: {problem}')
    diameters = p.numbers('Lesion_diameters_Pixel_', 2)
    if min(diameters) < 0:
        raise p.error('Lesion_diameters_Pixel_', 'expected non-negative diameters')

    lesion_type = p.integer('Coarse_lesion_type')
    if lesion_type not in LESION_TYPE_NAMES:
        raise p.error('Coarse_lesion_type', 'expected 1..8 or -1')
    noisy = p.integer('Possibly_noisy')
    if noisy not in (0, 1):
        raise p.error('Possibly_noisy', 'expected 0 or 1')

    slice_range = p.numbers('Slice_range', 2)
    first, last = (int(v) for v in slice_range)
    if slice_range != (first, last):
        raise p.error('Slice_range', 'expected two integers')
    if not first <= key_slice_index <= last:
        raise p.error('Slice_range', f'expected first <= Key_slice_index ({key_slice_index}) '
                      '<= last')

    spacing = p.numbers('Spacing_mm_px_', 3)
    problem = ct_spacing_problem(spacing[:2], spacing[2])
    if problem:
        raise p.error('Spacing_mm_px_', problem)
    size = p.numbers('Image_size', 2)
    if min(size) < 1 or size != tuple(float(int(v)) for v in size):
        raise p.error('Image_size', 'expected two positive integers (width, height)')
    windows = p.numbers('DICOM_windows', multiple_of=2)
    window_pairs = tuple((windows[i], windows[i + 1]) for i in range(0, len(windows), 2))

    split = p.integer('Train_Val_Test')
    if split not in (1, 2, 3):
        raise p.error('Train_Val_Test', 'expected 1 (train), 2 (val) or 3 (test)')

    return DLInfoRow(
        csv_row=csv_row,
        file_name=file_name,
        patient_index=ids['Patient_index'],
        study_index=ids['Study_index'],
        series_id=ids['Series_ID'],
        key_slice_index=key_slice_index,
        measurement_coordinates=p.numbers('Measurement_coordinates', 8),
        bounding_box=box,
        lesion_diameters_pixel=diameters,
        normalized_lesion_location=p.numbers('Normalized_lesion_location', 3),
        coarse_lesion_type=lesion_type,
        possibly_noisy=bool(noisy),
        slice_range=(first, last),
        spacing_mm_px=spacing,
        image_size=(int(size[0]), int(size[1])),
        dicom_windows=window_pairs,
        patient_gender=fields['Patient_gender'].strip(),
        patient_age=p.optional_number('Patient_age'),
        train_val_test=split)


def _read_text(path: str) -> str:
    """The file's text (UTF-8, optional BOM); a decoding error names the line and byte."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'DeepLesion annotation file not found: {path}') from None
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as error:
        line = data.count(b'\n', 0, error.start) + 1
        raise ValueError(f'{path}: row {line} is not UTF-8 text (byte {data[error.start]:#04x} '
                         f'at offset {error.start}); DL_info.csv must be UTF-8') from None


def read_dl_info(path: str) -> List[DLInfoRow]:
    """Read and validate every row of a ``DL_info.csv``.

    Besides each row's own fields (see :class:`DLInfoRow`), the file as a whole must not
    annotate the same box on the same key slice twice (:class:`LesionsListedOnce`).

    Args:
        path: path of the csv file (UTF-8, optionally with a byte-order mark).

    Returns:
        The rows in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not UTF-8, a required column is missing, a row is malformed
            or duplicates an earlier one; the message names the file, the 1-based row number
            (header = row 1) and the column.
    """
    reader = csv.reader(io.StringIO(_read_text(path), newline=''))
    header = next(reader, None)
    if header is None:
        raise ValueError(f'{path}: empty file, expected the DL_info.csv header')
    header = [name.strip() for name in header]
    missing = [name for name in DL_INFO_COLUMNS if name not in header]
    if missing:
        raise ValueError(f'{path}: missing column(s) {missing} in the header (row 1); '
                         f'DL_info.csv needs {list(DL_INFO_COLUMNS)}')
    position = {name: header.index(name) for name in DL_INFO_COLUMNS}
    rows = []
    listed_once = LesionsListedOnce(path)
    for line_number, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue  # blank line (e.g. trailing newline)
        if len(values) != len(header):
            raise ValueError(f'{path}: row {line_number} has {len(values)} fields, the '
                             f'header has {len(header)} (unquoted comma in a '
                             'multi-valued field?)')
        fields = {name: values[i] for name, i in position.items()}
        row = _parse_row(path, line_number, fields)
        listed_once.add(f'{row.series_folder}/{slice_file_name(row.key_slice_index)}',
                        [v - 1.0 for v in row.bounding_box], f'row {line_number}')
        rows.append(row)
    return rows


def _format_numbers(values) -> str:
    return ', '.join(f'{v:.6g}' for v in values)


def write_dl_info(path: str, rows: List[DLInfoRow]) -> None:
    """Write rows in the official ``DL_info.csv`` format (numbers with 6 significant digits).

    Multi-valued fields are written as ``"a, b, c"`` (quoted), exactly like the release.
    ``csv_row`` of the rows is ignored (rows are written in list order). The file is written
    whole or not at all (a temporary file renamed into place).

    Args:
        path: output path.
        rows: rows to write.
    """
    with atomic_write(path, newline='') as handle:
        writer = csv.writer(handle, lineterminator='\n')
        writer.writerow(DL_INFO_COLUMNS)
        for row in rows:
            age = '' if row.patient_age is None else f'{row.patient_age:g}'
            writer.writerow([
                row.file_name, row.patient_index, row.study_index, row.series_id,
                row.key_slice_index,
                _format_numbers(row.measurement_coordinates),
                _format_numbers(row.bounding_box),
                _format_numbers(row.lesion_diameters_pixel),
                _format_numbers(row.normalized_lesion_location),
                row.coarse_lesion_type, int(row.possibly_noisy),
                _format_numbers(row.slice_range),
                _format_numbers(row.spacing_mm_px),
                _format_numbers(row.image_size),
                _format_numbers(w for pair in row.dicom_windows for w in pair),
                row.patient_gender, age, row.train_val_test
            ])

"""Lesion ground truth of DeepLesion sub-volumes, for the 3D FROC.

Two sources, both keyed by sub-volume name (``'<series folder>_<first:03d>-<last:03d>'``,
:func:`~mp3d_mmdet.datasets.dl_info.subvolume_name`) and both in *whole-series* coordinates:
x, y are 0-based pixel indices, z the slice file number (so a detection at voxel ``z`` of a
sub-volume starting at slice ``first`` lies on slice ``first + z``):

* **The manual 3D test set** (LENS, Yan et al. IEEE TMI 2020,
  ``DeepLesion_manual_1K_test_release.pkl``): ``{'val': {name: B}, 'test': {name: B}}`` with
  ``B`` an ``(n, 6)`` array ``[x1, y1, z1, x2, y2, z2]`` (inclusive indices) of *every*
  lesion in the sub-volume (200 val / 800 test sub-volumes, some with none).
  :func:`read_lens_annotations` reads it without running code from it (an allow-list
  unpickler); :func:`write_lens_annotations` writes the same format (the synthetic generator
  uses it, with a ``'train'`` split too).
* **The key-slice boxes of ``DL_info.csv``** (:func:`key_slice_ground_truth`): every lesion
  of a split as ``[x1, y1, z, x2, y2, z]`` on its key slice ``z``, in the sub-volume that
  holds that slice, with its RECIST long diameter -- the "P3D" mode of LENS, which works for
  the whole test split but misses the lesions nobody annotated.

Detections are matched to these lesions by :func:`candidates_in_series_slices`, which brings
a results file's candidates into the same whole-series coordinates (the ``z_offset`` rule of
:func:`~mp3d_mmdet.datasets.dl_info.subvolume_z_offset`) and refuses a lesion that lies
outside its volume's image.
"""
import os.path as osp
import pickle
import pickletools
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..structures.boxes import as_boxes
from ..utils.pickle_allowlist import load_pickle_allowlisted
from ..utils.safe_files import atomic_write
from .dl_info import SPLIT_CODES, parse_subvolume_name, read_dl_info, subvolume_z_offset

__all__ = [
    'VolumeGroundTruth', 'is_pickle_file', 'read_lens_annotations', 'write_lens_annotations',
    'key_slice_ground_truth', 'candidates_in_series_slices'
]


@dataclass
class VolumeGroundTruth:
    """The lesions of a set of sub-volumes.

    Attributes:
        boxes: sub-volume name -> float64 ``(g, 6)``
            ``[x1, y1, z1, x2, y2, z2]`` (key-slice mode: ``z1 == z2``), whole-series
            coordinates (module docstring); every evaluated sub-volume has an entry.
        key_slice: the boxes are key-slice boxes (score in the "P3D" mode).
        long_diameters_mm: sub-volume name -> ``(g,)`` RECIST
            long diameters in mm where the source has them (``DL_info.csv``), else None.
        source: one line naming the file, split and mode, for reports.
        path: the annotation file, for messages.
    """
    boxes: Dict[str, np.ndarray]
    key_slice: bool
    long_diameters_mm: Optional[Dict[str, np.ndarray]]
    source: str
    path: str = ''


def is_pickle_file(path: str) -> bool:
    """Whether the file is a pickle, of any protocol (0-5), recognised from its content: its
    opcodes are read (not run) up to the final STOP, which must end the file. A text file
    such as ``DL_info.csv`` fails at its first bytes."""
    try:
        with open(path, 'rb') as handle:
            for _ in pickletools.genops(handle):
                pass
            return handle.read(1) == b''
    except Exception:  # any malformed opcode stream: not a pickle
        return False


def read_lens_annotations(path: str, split: str) -> VolumeGroundTruth:
    """Read one split of a LENS-format annotation file.

    Args:
        path: the ``.pkl`` file (``{split: {name: (n, 6) array}}``).
        split: a split the file holds (LENS: ``'val'`` or ``'test'``).

    Returns:
        3D boxes of the split's sub-volumes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a plain-data pickle (one that would build other objects, and so could
            run code, is refused unread), not the format, an unknown split, a malformed name
            or box array, or a box outside its sub-volume's slices; the message names the
            file, split and sub-volume.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'3D annotation file not found: {path}')
    content = load_pickle_allowlisted(path)
    if not isinstance(content, dict) or not all(isinstance(v, dict) for v in content.values()):
        raise ValueError(f'{path}: expected {{split: {{sub-volume name: (n, 6) boxes}}}} (the '
                         'format of DeepLesion_manual_1K_test_release.pkl)')
    if split not in content:
        raise ValueError(f"{path}: no split '{split}' (the file holds {sorted(content)})")
    boxes = {}
    for name, value in content[split].items():
        where = f"{path}: split '{split}', sub-volume {name!r}"
        if not isinstance(name, str):
            raise ValueError(f'{where}: names must be strings')
        try:
            _, first, last = parse_subvolume_name(name)
        except ValueError as error:
            raise ValueError(f'{path}: {error}') from None
        boxes[name] = as_boxes(value, where, columns=6).copy()
        outside = (boxes[name][:, 2] < first) | (boxes[name][:, 5] > last)
        if outside.any():
            row = int(outside.argmax())
            raise ValueError(f'{where}: box {row} spans slices {boxes[name][row, 2]:g}-'
                             f'{boxes[name][row, 5]:g}, outside the sub-volume\'s slices '
                             f'{first}-{last} (z must be whole-series slice numbers)')
    return VolumeGroundTruth(boxes=boxes, key_slice=False, long_diameters_mm=None,
                             source=f"{path} ('{split}': {len(boxes)} sub-volumes, "
                             '3D boxes of every lesion)', path=path)


def write_lens_annotations(path: str, splits: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Write ``{split: {name: (n, 6) boxes}}`` in the LENS format (a pickle of plain dicts and
    float64 arrays), whole or not at all.

    Args:
        path: output ``.pkl`` file.
        splits: split name -> sub-volume name -> ``(n, 6)`` boxes.
    """
    content = {split: {name: np.asarray(b, dtype=np.float64).reshape(-1, 6)
                       for name, b in sorted(volumes.items())}
               for split, volumes in splits.items()}
    with atomic_write(path, 'wb') as handle:
        pickle.dump(content, handle, protocol=4)


def key_slice_ground_truth(dl_info_path: str, split: str,
                           subvolumes: Iterable[str],
                           exclude_noisy: bool = True) -> VolumeGroundTruth:
    """The split's ``DL_info.csv`` lesions as key-slice boxes of the given sub-volumes.

    Args:
        dl_info_path: the release's ``DL_info.csv``.
        split: 'train', 'val' or 'test'.
        subvolumes: sub-volume names, e.g. every one a batch run detected in;
            those of series without a row in the split are left out.
        exclude_noisy: leave out ``Possibly_noisy`` lesions. Defaults to True.

    Returns:
        For each kept sub-volume the
        ``[x1 - 1, y1 - 1, z, x2 - 1, y2 - 1, z]`` boxes (0-based from the csv's 1-based ones;
        ``z`` = key slice number) of the rows whose key slice it holds, and their long
        diameters in mm (a sub-volume without such a row gets none).

    Raises:
        ValueError: an unknown split, a malformed sub-volume name, or a key slice of the split
            that none of the sub-volumes holds (the sensitivity would be over another set of
            lesions).
    """
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
    split_rows = [row for row in read_dl_info(dl_info_path)
                  if row.train_val_test == SPLIT_CODES[split]]
    split_series = {row.series_folder for row in split_rows}
    runs: Dict[str, List[Tuple[str, int, int]]] = {}
    names = []
    for name in subvolumes:
        series, first, last = parse_subvolume_name(name)
        if series in split_series:
            runs.setdefault(series, []).append((name, first, last))
            names.append(name)
    boxes: Dict[str, List[Sequence[float]]] = {name: [] for name in names}
    diameters: Dict[str, List[float]] = {name: [] for name in names}
    outside = []
    for row in split_rows:
        if exclude_noisy and row.possibly_noisy:
            continue
        holding = [name for name, first, last in runs.get(row.series_folder, [])
                   if first <= row.key_slice_index <= last]
        if not holding:
            outside.append(row)
            continue
        x1, y1, x2, y2 = (v - 1.0 for v in row.bounding_box)
        z = float(row.key_slice_index)
        for name in holding:
            boxes[name].append([x1, y1, z, x2, y2, z])
            diameters[name].append(row.lesion_diameters_pixel[0] * row.spacing_mm_px[0])
    if outside:
        raise ValueError(f"{dl_info_path}: {len(outside)} lesion(s) of the '{split}' split lie "
                         'on key slices outside the evaluated sub-volumes (first: row '
                         f'{outside[0].csv_row}, {outside[0].file_name}); evaluate every '
                         "sub-volume of the split's series")
    return VolumeGroundTruth(
        boxes={name: np.array(b, dtype=np.float64).reshape(-1, 6) for name, b in boxes.items()},
        key_slice=True,
        long_diameters_mm={name: np.array(d, dtype=np.float64) for name, d in diameters.items()},
        source=f"{dl_info_path} ('{split}', key-slice boxes"
        f"{', noisy lesions excluded' if exclude_noisy else ''}) in {len(names)} sub-volumes",
        path=dl_info_path)


def candidates_in_series_slices(
        ground_truth: VolumeGroundTruth, records: Mapping[str, Mapping[str, Any]],
        results_path: str) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """The candidates and lesions of every sub-volume of ``ground_truth``, both in
    whole-series coordinates (z = slice number), ready for the 3D FROC.

    Each record's ``z_offset`` is checked against the one its name implies
    (:func:`~mp3d_mmdet.datasets.dl_info.subvolume_z_offset`): a results file written for
    volumes whose reader did not know their slice numbers (e.g. NIfTIs of sub-volumes,
    ``z_offset`` 0) is corrected to the name's, with one warning naming the file, the number
    of such volumes and the first. A lesion that lies entirely outside its volume's image (it
    could never be hit) is refused.

    Args:
        ground_truth: the lesions; every sub-volume in it must have a record.
        records: name -> record of :func:`~mp3d_mmdet.volume.read_volume_detections`
            (``boxes`` ``(n, 7)`` in voxel indices, ``z_offset``, ``shape_xyz``).
        results_path: the results file, for messages.

    Returns:
        Per sub-volume of ``ground_truth`` (in its
        order), the float64 ``(n, 7)`` candidates ``[x1, y1, z1, x2, y2, z2, score]`` with
        ``z_offset`` added to ``z1``, ``z2``, and its ``(g, 6)`` lesions.

    Raises:
        ValueError: a lesion outside its volume's image; one line naming the annotation
            file, the sub-volume and the lesion.
    """
    boxes, gts, corrected = [], [], []
    for name, lesions in ground_truth.boxes.items():
        record = records[name]
        width, height = (int(v) for v in record['shape_xyz'][:2])
        z_offset = subvolume_z_offset(name)
        if int(record['z_offset']) != z_offset:
            corrected.append(f"{name} ({record['z_offset']})")
        candidates = np.array(record['boxes'], dtype=np.float64).reshape(-1, 7)
        candidates[:, [2, 5]] += z_offset
        outside = ((lesions[:, 0] > width - 1) | (lesions[:, 1] > height - 1) |
                   (lesions[:, 3] < 0) | (lesions[:, 4] < 0))
        if outside.any():
            row = int(outside.argmax())
            raise ValueError(f'{ground_truth.path}: sub-volume {name!r}, box {row} '
                             f'{lesions[row].tolist()} lies outside the volume\'s {width}x{height} '
                             f'image ({results_path}): such a lesion can never be hit')
        boxes.append(candidates)
        gts.append(lesions)
    if corrected:
        warnings.warn(f'{results_path}: {len(corrected)} volume(s) have another z_offset than '
                      'the first slice their sub-volume name states, e.g. '
                      f'{corrected[0]}; evaluated with the name\'s (voxel z = 0 is the first '
                      'slice of a sub-volume)', stacklevel=2)
    return boxes, gts

"""Inputs of a batch of volumes: lists, folders and DeepLesion sub-volumes, each named.

**Inputs** (:class:`VolumeInput`, each with a unique ``name``):

* :func:`volume_inputs_from_list_file` -- a text file with one volume path per line (a file
  or a DICOM series folder; relative paths are relative to the list file's folder; blank
  lines and lines starting with ``#`` are skipped);
* :func:`volume_inputs_from_folder` -- every supported volume file
  (:data:`~mp3d_mmdet.volume.SUPPORTED_FILE_SUFFIXES`) and every sub-folder holding a DICOM
  series in a folder (not recursive; hidden entries and other files are ignored, sub-folders
  without DICOM files are named in a warning);
* :func:`volume_inputs_from_deeplesion` -- the sub-volumes of a DeepLesion release
  (:mod:`mp3d_mmdet.volume.io.deeplesion_subvolumes`), optionally one split.

A volume's ``name`` is its DeepLesion sub-volume name, else the file name without its volume
suffix (``scan.nii.gz`` -> ``scan``; another suffix SimpleITK reads: the last one), or the
DICOM folder's name. Two inputs of one name are a one-line error.

**Input stamp** (:meth:`VolumeInput.stamp`): the number of files read, their total size and
their latest modification time (ns): the volume file (a ``.mhd`` / ``.nhdr`` header with the
data files of its name beside it), the DICOM folder's files, or a DeepLesion sub-volume's slice
files. The results file records it, so that a resumed batch redoes a volume whose files
changed since.
"""
import os
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

from ..datasets.dl_info import subvolume_z_offset
from ..utils.messages import format_examples
from .io.ct_reader import read_ct_volume
from .io.ct_volume import SUPPORTED_FILE_SUFFIXES, CTVolume
from .io.deeplesion_subvolumes import (DeepLesionSubvolume, list_deeplesion_subvolumes,
                                       read_deeplesion_subvolume)

__all__ = ['VolumeInput', 'volume_name_of_path', 'volume_inputs_from_paths',
           'volume_inputs_from_list_file', 'volume_inputs_from_folder',
           'volume_inputs_from_deeplesion', 'check_unique_names']

_DETACHED_HEADER_SUFFIXES = ('.mhd', '.nhdr')


@dataclass(frozen=True)
class VolumeInput:
    """One volume of a batch.

    Attributes:
        name: unique name in the batch (the results file's key).
        source: absolute path read: a volume file, a DICOM series folder, or (for a
            DeepLesion sub-volume) the series folder.
        z_offset: slice number of voxel ``z = 0``: the first slice a DeepLesion
            sub-volume name states, 0 for other names
            (:func:`~mp3d_mmdet.datasets.dl_info.subvolume_z_offset`).
        subvolume: set for DeepLesion sub-volumes.
        deeplesion_root: the release folder of ``subvolume``.
    """
    name: str
    source: str
    z_offset: int = 0
    subvolume: Optional[DeepLesionSubvolume] = None
    deeplesion_root: Optional[str] = None

    def files(self) -> List[str]:
        """The files :meth:`read` reads (existing ones; module docstring)."""
        if self.subvolume is not None:
            paths = self.subvolume.slice_paths(self.deeplesion_root)
        elif osp.isdir(self.source):
            paths = [osp.join(self.source, entry) for entry in sorted(os.listdir(self.source))
                     if not entry.startswith('.')]
        elif self.source.lower().endswith(_DETACHED_HEADER_SUFFIXES):
            folder, base = osp.split(self.source)
            stem = base.rsplit('.', 1)[0] + '.'
            paths = [osp.join(folder, entry) for entry in sorted(os.listdir(folder or '.'))
                     if entry.startswith(stem)]
        else:
            paths = [self.source]
        return [path for path in paths if osp.isfile(path)]

    def stamp(self) -> Dict[str, int]:
        """``{'files': n, 'bytes': total size, 'mtime_ns': latest modification}`` of
        :meth:`files` (all 0 when none exists)."""
        stats = [os.stat(path) for path in self.files()]
        return {'files': len(stats), 'bytes': int(sum(s.st_size for s in stats)),
                'mtime_ns': int(max((s.st_mtime_ns for s in stats), default=0))}

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
    ``source`` = the absolute path, ``z_offset`` the one the name implies (a file named after
    a DeepLesion sub-volume, ``000001_01_01_103-115.nii.gz``: 103; else 0). Paths are not
    checked here."""
    inputs = []
    for path in paths:
        name = volume_name_of_path(path)
        inputs.append(VolumeInput(name=name, source=osp.abspath(path),
                                  z_offset=subvolume_z_offset(name)))
    return inputs


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
    (:func:`~mp3d_mmdet.volume.list_deeplesion_subvolumes`; its warnings and errors apply):
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
    return [VolumeInput(name=s.name, source=s.series_dir(root),
                        z_offset=subvolume_z_offset(s.name), subvolume=s, deeplesion_root=root)
            for s in subvolumes]


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

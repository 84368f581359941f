"""DeepLesion sub-volumes as CT volumes for whole-volume inference.

The DeepLesion release stores, per CT series, only runs of slices around its annotated key
slices: ``ROOT/Images_png/<patient:06d>_<study:02d>_<series:02d>/<slice:03d>.png`` (16-bit
PNGs holding ``HU + 32768``), spacing in ``ROOT/DL_info.csv``. Every run of **consecutive
slice numbers** in one series folder is a *sub-volume*, named
``f'{series}_{first:03d}-{last:03d}'`` (e.g. ``000001_01_01_103-115``) -- the naming of the
LENS / DeepLesion manual 3D test set. A gap in the numbers (files 001-005 and 008-010) gives
two sub-volumes (``..._001-005`` and ``..._008-010``).

* :func:`list_deeplesion_subvolumes` lists them (optionally one split only);
* :func:`read_deeplesion_subvolume` reads one as a :class:`~mp3d_mmdet.volume.CTVolume`, the
  object :func:`~mp3d_mmdet.volume.detect_lesions_in_volume` and
  :class:`~mp3d_mmdet.volume.VolumeLesionDetector` take, so a sub-volume goes through exactly
  the path of a NIfTI or DICOM volume (no conversion step);
* :func:`write_deeplesion_subvolume_nifti` writes one as NIfTI (for viewing only).

**Voxel indices.** Voxel ``x`` = PNG column, ``y`` = PNG row, ``z = k`` for the ``k``-th
slice of the run in increasing slice-number order: slice number = ``first + z``, and
``CTVolume.hu[z, y, x]`` = value of PNG ``<first + z:03d>.png`` at row ``y``, column ``x``
minus 32768. The grid has the identity direction (orientation code ``'LPS'``, the
:data:`~mp3d_mmdet.volume.STANDARD_ORIENTATION` that :func:`~mp3d_mmdet.volume.read_ct_volume`
reorients to, so nothing is permuted or flipped) and origin ``(0, 0, first * sz)`` mm: the
physical z of a voxel is ``slice number * sz``, the same for every sub-volume of a series.
The PNGs carry no patient orientation, so the ``'LPS'`` label is nominal (DeepLesion slices
are displayed with the patient's left on the right of the image, posterior at the bottom; the
release does not say whether slice numbers run towards the head or the feet).

**Spacing** comes from the ``Spacing_mm_px_`` column of ``DL_info.csv``: ``(x, y)`` pixel
spacing and the slice interval ``z``, which must be identical for all rows of a series.
A series folder without any ``DL_info.csv`` row has no spacing: it is skipped (one warning
for all such folders, whatever ``split``); series with rows but no folder under
``Images_png`` (a partly unpacked release) are reported the same way.
"""
import os
import os.path as osp
import re
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ...datasets.dl_info import (SPLIT_CODES, consecutive_runs, parse_subvolume_name,
                                 read_dl_info, slice_file_name, subvolume_name)
from ...datasets.slice_sampling import png_to_hu
from ...datasets.transforms.loading import read_uint16_png
from ...utils.safe_files import atomic_sitk_write
from ...utils.validation import ct_spacing_problem
from ...utils.messages import format_examples
from .ct_reader import hu_statistics, hu_warnings
from .ct_volume import STANDARD_ORIENTATION, CTVolume, VolumeGeometry, VolumeInputError

__all__ = ['DeepLesionSubvolume', 'list_deeplesion_subvolumes', 'read_deeplesion_subvolume',
           'parse_subvolume_name', 'write_deeplesion_subvolume_nifti', 'DEEPLESION_SOURCE_FORMAT']

#: :attr:`CTVolume.source_format` of a volume read by :func:`read_deeplesion_subvolume`.
DEEPLESION_SOURCE_FORMAT = 'deeplesion_png'

_SERIES_PATTERN = re.compile(r'^\d{6}_\d{2}_\d{2}$')
_SLICE_FILE_PATTERN = re.compile(r'^(\d+)\.png$')
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class DeepLesionSubvolume:
    """A run of consecutive slice files of one DeepLesion series.

    Attributes:
        name: ``f'{series_folder}_{first:03d}-{last:03d}'``.
        series_folder: e.g. ``'000001_01_01'`` (under ``ROOT/Images_png``).
        first: first slice number of the run (file ``<first:03d>.png``).
        last: last slice number (inclusive, ``last >= first``).
        spacing_mm_xyz: ``(sx, sy, sz)`` mm from
            ``DL_info.csv`` (pixel spacing x, y; slice interval).
        split_codes: sorted distinct ``Train_Val_Test`` codes of the
            series' ``DL_info.csv`` rows (1 train, 2 val, 3 test).
    """
    name: str
    series_folder: str
    first: int
    last: int
    spacing_mm_xyz: Tuple[float, float, float]
    split_codes: Tuple[int, ...]

    @property
    def slice_numbers(self) -> List[int]:
        """``[first, first + 1, ..., last]``: slice number of voxel ``z`` is ``first + z``."""
        return list(range(self.first, self.last + 1))

    @property
    def num_slices(self) -> int:
        """``Z`` = ``last - first + 1``."""
        return self.last - self.first + 1

    @property
    def split_code(self) -> Optional[int]:
        """The series' split code if its rows agree on one (the release splits by patient),
        else None."""
        return self.split_codes[0] if len(self.split_codes) == 1 else None

    def series_dir(self, root: str) -> str:
        """``ROOT/Images_png/<series_folder>``."""
        return osp.join(root, 'Images_png', self.series_folder)

    def slice_paths(self, root: str) -> List[str]:
        """The PNG files of the run, in ``z`` order."""
        folder = self.series_dir(root)
        return [osp.join(folder, slice_file_name(n)) for n in self.slice_numbers]


def _check_root(root: str) -> Tuple[str, str]:
    """``(DL_info.csv path, Images_png path)``; a missing one is a one-line error."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'DeepLesion root folder not found: {root}')
    csv_path = osp.join(root, 'DL_info.csv')
    if not osp.isfile(csv_path):
        raise FileNotFoundError(f'DeepLesion annotation file not found: {csv_path}')
    images = osp.join(root, 'Images_png')
    if not osp.isdir(images):
        raise FileNotFoundError(f'DeepLesion image folder not found: {images}')
    return csv_path, images


_SERIES_INFO_CACHE: Dict[Tuple[str, int, int], Dict[str, Tuple[Tuple[float, float, float],
                                                               Tuple[int, ...]]]] = {}


def _series_info(csv_path: str) -> Dict[str, Tuple[Tuple[float, float, float], Tuple[int, ...]]]:
    """``{series folder: (spacing (sx, sy, sz), sorted split codes)}`` from ``DL_info.csv``
    (cached per file path, size and modification time).

    Raises:
        ValueError: the rows of a series disagree on ``Spacing_mm_px_`` (names both rows).
    """
    stat = os.stat(csv_path)
    key = (osp.realpath(csv_path), stat.st_size, stat.st_mtime_ns)
    if key in _SERIES_INFO_CACHE:
        return _SERIES_INFO_CACHE[key]
    spacing: Dict[str, Tuple[Tuple[float, float, float], int]] = {}
    splits: Dict[str, set] = {}
    for row in read_dl_info(csv_path):
        folder = row.series_folder
        value = tuple(float(v) for v in row.spacing_mm_px)
        if folder in spacing:
            first_value, first_row = spacing[folder]
            if not np.allclose(value, first_value, rtol=1e-5, atol=0.0):
                raise ValueError(
                    f"{csv_path}: row {row.csv_row}, column 'Spacing_mm_px_': series "
                    f'{folder} has spacing {value} here but {first_value} in row {first_row}; '
                    'all rows of a series must agree')
        else:
            spacing[folder] = (value, row.csv_row)
        splits.setdefault(folder, set()).add(row.train_val_test)
    info = {folder: (value, tuple(sorted(splits[folder])))
            for folder, (value, _) in spacing.items()}
    _SERIES_INFO_CACHE.clear()  # one release at a time is enough
    _SERIES_INFO_CACHE[key] = info
    return info


def _slice_numbers(folder: str) -> List[int]:
    """Sorted slice numbers of the ``<n>.png`` files in a series folder (other names are
    ignored)."""
    numbers = []
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _SLICE_FILE_PATTERN.match(entry.name)
            if match is not None and entry.is_file():
                numbers.append(int(match.group(1)))
    return sorted(numbers)


def list_deeplesion_subvolumes(root: str, split: Optional[str] = None
                               ) -> List[DeepLesionSubvolume]:
    """List the sub-volumes of an unpacked DeepLesion release (rules: module docstring).

    Args:
        root: the release folder holding ``DL_info.csv`` and ``Images_png/``.
        split: ``'train'``, ``'val'`` or ``'test'``: keep the series with at
            least one ``DL_info.csv`` row of that split; None = every series that has rows.

    Returns:
        Sorted by series folder, then first slice number.

    Warns:
        UserWarning: one line for series folders without ``DL_info.csv`` rows (skipped: no
        spacing), one for series of the selection that have rows but no folder.

    Raises:
        FileNotFoundError: ``root``, ``root/DL_info.csv`` or ``root/Images_png`` is missing
            (one line naming the path).
        ValueError: unknown ``split``; a malformed ``DL_info.csv`` (one line naming file, row
            and column, see :func:`~mp3d_mmdet.datasets.dl_info.read_dl_info`); rows of one
            series with different spacings.
    """
    if split is not None and split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)} or None, got {split!r}")
    csv_path, images = _check_root(root)
    info = _series_info(csv_path)
    folders = sorted(name for name in os.listdir(images)
                     if _SERIES_PATTERN.match(name) and osp.isdir(osp.join(images, name)))
    without_rows = [name for name in folders if name not in info]
    if without_rows:
        warnings.warn(f'{images}: {len(without_rows)} series folder(s) have no row in '
                      f'{csv_path} (no spacing): skipped ({format_examples(without_rows)})',
                      stacklevel=2)
    wanted = None if split is None else SPLIT_CODES[split]
    selected = sorted(name for name, (_, codes) in info.items()
                      if wanted is None or wanted in codes)
    present = set(folders)
    missing = [name for name in selected if name not in present]
    if missing:
        which = 'series' if split is None else f'{split} series'
        warnings.warn(f'{len(missing)} {which} of {csv_path} have no folder under {images} '
                      f'(release not fully unpacked?): skipped ({format_examples(missing)})',
                      stacklevel=2)
    subvolumes = []
    for folder in selected:
        if folder not in present:
            continue
        spacing, codes = info[folder]
        for first, last in consecutive_runs(_slice_numbers(osp.join(images, folder))):
            subvolumes.append(DeepLesionSubvolume(
                name=subvolume_name(folder, first, last), series_folder=folder, first=first,
                last=last, spacing_mm_xyz=spacing, split_codes=codes))
    return subvolumes


def _resolve(subvolume_or_name: Union[DeepLesionSubvolume, str],
             root: str) -> DeepLesionSubvolume:
    """A sub-volume given by name -> its :class:`DeepLesionSubvolume` (spacing and splits
    from ``DL_info.csv``)."""
    if isinstance(subvolume_or_name, DeepLesionSubvolume):
        return subvolume_or_name
    if not isinstance(subvolume_or_name, str):
        raise TypeError('subvolume_or_name must be a DeepLesionSubvolume or a name, got '
                        f'{type(subvolume_or_name).__name__}')
    folder, first, last = parse_subvolume_name(subvolume_or_name)
    csv_path, _ = _check_root(root)
    info = _series_info(csv_path)
    if folder not in info:
        raise ValueError(f'{subvolume_or_name}: series {folder} has no row in {csv_path} '
                         '(its spacing is unknown)')
    spacing, codes = info[folder]
    return DeepLesionSubvolume(name=subvolume_name(folder, first, last), series_folder=folder,
                               first=first, last=last, spacing_mm_xyz=spacing,
                               split_codes=codes)


def read_deeplesion_subvolume(subvolume_or_name: Union[DeepLesionSubvolume, str],
                              root: str) -> CTVolume:
    """Read a DeepLesion sub-volume as a CT volume (voxel indices: module docstring).

    Args:
        subvolume_or_name: from
            :func:`list_deeplesion_subvolumes`, or a name such as ``'000001_01_01_103-115'``
            (spacing then read from ``root/DL_info.csv``); any range of existing slice files
            of a series can be named.
        root: the release folder.

    Returns:
        ``hu`` int16 ``(Z, Y, X)`` = PNG value - 32768 (``Z = last - first + 1``);
        ``geometry`` = ``original_geometry``: size ``(X, Y, Z)``, spacing from
        ``DL_info.csv``, origin ``(0, 0, first * sz)``, identity direction (``'LPS'``);
        ``source_path`` = the series folder, ``source_format`` =
        :data:`DEEPLESION_SOURCE_FORMAT`, ``reoriented`` False; ``warnings`` as for
        :func:`~mp3d_mmdet.volume.read_ct_volume` (intensities that do not look like HU). A
        single-slice run is read too (``Z = 1``; the detector then replicates it for every
        input slice and says so).

    Raises:
        FileNotFoundError: the root, ``DL_info.csv``, ``Images_png`` or a slice file of the
            range is missing.
        ValueError: a bad name, a series without ``DL_info.csv`` rows, a slice that is not a
            single-channel 16-bit PNG.
        VolumeInputError: slices of different sizes, an implausible spacing.
    """
    subvolume = _resolve(subvolume_or_name, root)
    folder = subvolume.series_dir(root)
    sx, sy, sz = (float(s) for s in subvolume.spacing_mm_xyz)
    problem = ct_spacing_problem((sx, sy), sz)
    if problem:
        raise VolumeInputError(f'{subvolume.name}: {problem}; voxel spacing {(sx, sy, sz)} mm')
    paths = subvolume.slice_paths(root)
    first_slice = read_uint16_png(paths[0])
    hu = np.empty((len(paths), ) + first_slice.shape, np.int16)
    for z, path in enumerate(paths):
        raw = first_slice if z == 0 else read_uint16_png(path)
        if raw.shape != first_slice.shape:
            raise VolumeInputError(f'{path}: {raw.shape[1]} x {raw.shape[0]} px, but '
                                   f'{paths[0]} is {first_slice.shape[1]} x '
                                   f'{first_slice.shape[0]} px; the slices of sub-volume '
                                   f'{subvolume.name} must have one size')
        hu[z] = png_to_hu(raw)  # integers in [-32768, 32767]: exact in int16
    depth, height, width = hu.shape
    direction = _IDENTITY
    geometry = VolumeGeometry(size=(width, height, depth), spacing=(sx, sy, sz),
                              origin=(0.0, 0.0, subvolume.first * sz), direction=direction,
                              orientation=STANDARD_ORIENTATION)
    stats = hu_statistics(hu)
    messages = hu_warnings(f'{folder} ({subvolume.name})', stats)
    return CTVolume(hu=hu, geometry=geometry, original_geometry=geometry, source_path=folder,
                    source_format=DEEPLESION_SOURCE_FORMAT, reoriented=False,
                    intensity_stats=stats, warnings=messages)


def write_deeplesion_subvolume_nifti(subvolume_or_name: Union[DeepLesionSubvolume, str],
                                     root: str, path: str) -> str:
    """Write a sub-volume as a NIfTI file (``.nii`` / ``.nii.gz``) for viewing.

    The file holds the int16 HU of :func:`read_deeplesion_subvolume` with its spacing, origin
    and direction: :func:`~mp3d_mmdet.volume.read_ct_volume` reads it back voxel for voxel on
    the same grid. Written whole or not at all (a temporary file renamed into place).

    Args:
        subvolume_or_name: the sub-volume.
        root: the release folder.
        path: destination ending in ``.nii`` or ``.nii.gz`` (its folder must exist).

    Returns:
        ``path``.
    """
    import SimpleITK as sitk
    if not path.lower().endswith(('.nii', '.nii.gz')):
        raise ValueError(f'{path}: a NIfTI path must end in .nii or .nii.gz')
    volume = read_deeplesion_subvolume(subvolume_or_name, root)
    image = sitk.GetImageFromArray(volume.hu)
    image.SetSpacing(volume.geometry.spacing)
    image.SetOrigin(volume.geometry.origin)
    image.SetDirection(volume.geometry.direction)
    atomic_sitk_write(image, path)
    return path

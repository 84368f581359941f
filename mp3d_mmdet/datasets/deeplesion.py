"""The NIH DeepLesion dataset, read straight from the official release (no conversion step).

Expected layout under ``data_root`` (the unpacked release)::

    DL_info.csv
    Images_png/<patient:06d>_<study:02d>_<series:02d>/<slice:03d>.png   (uint16, HU + 32768)

One dataset item = one key slice with all lesions annotated on it (csv rows sharing a
``File_name``). Boxes are converted from the csv's 1-based pixel coordinates to 0-based
``[x1, y1, x2, y2]`` (subtract 1 from every coordinate).
"""
import logging
import os.path as osp
import warnings
from collections import OrderedDict
from typing import Dict, List, Union

import numpy as np
from mmengine.logging import print_log
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from .dl_info import SPLIT_CODES, DLInfoRow, read_dl_info, slice_file_name
from .transforms.loading import check_image_size, read_png_size

__all__ = ['DeepLesionDataset']


def _split_code(split: Union[str, int]) -> int:
    if isinstance(split, str) and split.lower() in SPLIT_CODES:
        return SPLIT_CODES[split.lower()]
    if isinstance(split, (int, np.integer)) and not isinstance(split, bool) and split in (1, 2, 3):
        return int(split)
    raise ValueError(f"split must be 'train', 'val', 'test' or 1, 2, 3, got {split!r}")


@DATASETS.register_module()
class DeepLesionDataset(BaseDetDataset):
    """DeepLesion key slices with their lesion boxes, from ``DL_info.csv`` + ``Images_png``.

    Each ``data_info`` (see :meth:`parse_data_info`) has: ``img_path`` (key slice PNG),
    ``img_id`` (0-based data-row index of the first csv row of the key slice, i.e.
    ``csv_row - 2``), ``width``, ``height``, ``series_dir``, ``key_slice``, ``slice_interval``
    (mm, z spacing), ``pixel_spacing`` (mm/px, x spacing), ``slice_range``,
    ``dicom_windows`` (distinct ``(low, high)`` pairs of the key slice's rows),
    ``patient_index``, ``study_index``, ``series_id`` and ``instances``: one dict per lesion
    with ``bbox`` (0-based ``[x1, y1, x2, y2]``), ``bbox_label`` (0), ``ignore_flag`` (0),
    ``lesion_type`` (1..8, -1 unknown), ``long_diameter_mm``, ``short_diameter_mm``
    (``Lesion_diameters_Pixel_`` x the x spacing), ``possibly_noisy`` and ``csv_row``.

    Args:
        data_root (str): the unpacked release (folder holding ``DL_info.csv``).
        ann_file (str): annotation csv, relative to ``data_root``. Defaults to 'DL_info.csv'.
        data_prefix (dict): ``img`` = PNG root relative to ``data_root``.
            Defaults to ``dict(img='Images_png/')``.
        split (str | int): 'train' / 'val' / 'test' or the ``Train_Val_Test`` code 1 / 2 / 3.
        exclude_noisy (bool): drop the lesions flagged ``Possibly_noisy`` and the key slices
            left without lesions, as the published evaluations do (the release's test set:
            4,831 images / 4,927 lesions -> 4,817 / 4,912). Defaults to True.
        data_fraction (float): keep this fraction of the split's *patients* (0 < f <= 1,
            rounded, at least one patient), for the paper's Table 5. Patients are taken in the
            order of one random permutation drawn with ``fraction_seed``, so for one seed a
            smaller fraction is a subset of a larger one. Defaults to 1.0.
        fraction_seed (int): seed of that permutation. Defaults to 0.
        check_files (bool): check at load time that every key slice PNG exists (raises
            FileNotFoundError naming the csv row) and that its size (read from the PNG
            header) is the row's ``Image_size`` (ValueError naming the rows). Defaults to
            True.
        **kwargs: the other arguments of :class:`mmdet.datasets.BaseDetDataset`
            (``pipeline``, ``test_mode``, ``filter_cfg``, ``lazy_init`` ...).
            ``filter_cfg=dict(filter_empty_gt=True, min_size=0)`` drops key slices without
            boxes (training only; never in ``test_mode``).
    """

    METAINFO = {'classes': ('lesion',), 'palette': [(220, 20, 60)]}

    def __init__(self,
                 *args,
                 ann_file: str = 'DL_info.csv',
                 data_prefix: dict = dict(img='Images_png/'),
                 split: Union[str, int] = 'train',
                 exclude_noisy: bool = True,
                 data_fraction: float = 1.0,
                 fraction_seed: int = 0,
                 check_files: bool = True,
                 **kwargs) -> None:
        self.split_code = _split_code(split)
        self.split = {code: name for name, code in SPLIT_CODES.items()}[self.split_code]
        if not 0.0 < float(data_fraction) <= 1.0:
            raise ValueError(f'data_fraction must be in (0, 1], got {data_fraction!r}')
        if 'img' not in data_prefix:
            raise ValueError("data_prefix needs the key 'img' (the PNG root, e.g. "
                             f"dict(img='Images_png/')), got {data_prefix!r}")
        self.exclude_noisy = bool(exclude_noisy)
        self.data_fraction = float(data_fraction)
        self.fraction_seed = int(fraction_seed)
        self.check_files = bool(check_files)
        super().__init__(*args, ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the csv, keep the split, group rows per key slice, parse each group.

        Returns:
            list[dict]: one ``data_info`` per key slice, in csv order.
        """
        rows = read_dl_info(self.ann_file)
        split_rows = [row for row in rows if row.train_val_test == self.split_code]
        if not split_rows:
            raise ValueError(f"{self.ann_file}: the split '{self.split}' (Train_Val_Test = "
                             f'{self.split_code}) has no rows')
        lesions_in_split = len(split_rows)
        images_in_split = len({row.file_name for row in split_rows})

        if self.exclude_noisy:
            kept = [row for row in split_rows if not row.possibly_noisy]
            print_log(
                f'DeepLesion {self.split}: excluded {lesions_in_split - len(kept)} '
                f'Possibly_noisy lesion(s) of {lesions_in_split}; '
                f'{images_in_split - len({r.file_name for r in kept})} key slice(s) left '
                'without lesions dropped', logger='current')
            split_rows = kept
            if not split_rows:
                raise ValueError(f"{self.ann_file}: the split '{self.split}' has no rows left "
                                 'after excluding Possibly_noisy lesions')

        if self.data_fraction < 1.0:
            split_rows = self._subsample_patients(split_rows)

        groups: 'OrderedDict[str, List[DLInfoRow]]' = OrderedDict()
        for row in split_rows:
            groups.setdefault(row.file_name, []).append(row)
        data_list = [self.parse_data_info(dict(rows=group)) for group in groups.values()]
        print_log(f'DeepLesion {self.split}: {len(data_list)} key slices, '
                  f'{sum(len(g) for g in groups.values())} lesions, '
                  f'{len({g[0].patient_index for g in groups.values()})} patients',
                  logger='current')
        return data_list

    def _subsample_patients(self, rows: List[DLInfoRow]) -> List[DLInfoRow]:
        patients = np.array(sorted({row.patient_index for row in rows}))
        order = np.random.default_rng(self.fraction_seed).permutation(patients.size)
        num_kept = max(1, int(round(self.data_fraction * patients.size)))
        kept = set(patients[order[:num_kept]].tolist())
        print_log(f'DeepLesion {self.split}: data_fraction={self.data_fraction} keeps '
                  f'{num_kept} of {patients.size} patients (fraction_seed='
                  f'{self.fraction_seed})', logger='current')
        return [row for row in rows if row.patient_index in kept]

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Turn the csv rows of one key slice into a ``data_info`` dict.

        Args:
            raw_data_info (dict): ``rows``: the :class:`DLInfoRow` s of one ``File_name``
                (at least one).

        Returns:
            dict: the ``data_info`` described in the class docstring.
        """
        rows: List[DLInfoRow] = raw_data_info['rows']
        first = rows[0]
        for row in rows[1:]:
            for field in ('image_size', 'spacing_mm_px', 'slice_range'):
                if getattr(row, field) != getattr(first, field):
                    raise ValueError(
                        f'{self.ann_file}: rows {first.csv_row} and {row.csv_row} annotate '
                        f'the same key slice {first.file_name} but disagree on {field}: '
                        f'{getattr(first, field)} vs {getattr(row, field)}')
        width, height = first.image_size
        series_dir = osp.join(self.data_prefix['img'], first.series_folder)
        img_path = osp.join(series_dir, slice_file_name(first.key_slice_index))
        if self.check_files:
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'{self.ann_file}: row {first.csv_row}: key slice file '
                                        f'{img_path} not found')
            try:
                check_image_size(img_path, read_png_size(img_path), first.image_size,
                                 [row.csv_row for row in rows])
            except ValueError as error:
                raise ValueError(f'{self.ann_file}: {error}') from None
        windows: List[tuple] = []
        for row in rows:
            for window in row.dicom_windows:
                if window not in windows:
                    windows.append(window)
        pixel_spacing = first.spacing_mm_px[0]
        return dict(
            img_path=img_path,
            img_id=first.csv_row - 2,
            width=width,
            height=height,
            series_dir=series_dir,
            key_slice=first.key_slice_index,
            slice_interval=float(first.spacing_mm_px[2]),
            pixel_spacing=float(pixel_spacing),
            slice_range=tuple(first.slice_range),
            dicom_windows=windows,
            patient_index=first.patient_index,
            study_index=first.study_index,
            series_id=first.series_id,
            instances=[self._parse_instance(row, width, height, pixel_spacing) for row in rows])

    def _parse_instance(self, row: DLInfoRow, width: int, height: int,
                        pixel_spacing: float) -> dict:
        box = np.asarray(row.bounding_box, dtype=np.float64) - 1.0  # 1-based -> 0-based
        clipped = box.copy()
        clipped[0::2] = clipped[0::2].clip(0, width - 1)
        clipped[1::2] = clipped[1::2].clip(0, height - 1)
        if not np.array_equal(clipped, box):
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                raise ValueError(
                    f'{self.ann_file}: row {row.csv_row}, column \'Bounding_boxes\': box '
                    f'{list(row.bounding_box)} (1-based) lies outside the {width}x{height} '
                    'image')
            warnings.warn(
                f'{self.ann_file}: row {row.csv_row}: box {list(row.bounding_box)} (1-based) '
                f'extends outside the {width}x{height} image; clipped to 0-based '
                f'{[round(v, 3) for v in clipped.tolist()]}', stacklevel=2)
        return dict(
            bbox=clipped.tolist(),
            bbox_label=0,
            ignore_flag=0,
            lesion_type=row.coarse_lesion_type,
            long_diameter_mm=float(row.lesion_diameters_pixel[0] * pixel_spacing),
            short_diameter_mm=float(row.lesion_diameters_pixel[1] * pixel_spacing),
            possibly_noisy=row.possibly_noisy,
            csv_row=row.csv_row)

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (training only): ``filter_empty_gt`` drops key slices without
        boxes, ``min_size`` drops images whose width or height is smaller. Logged, never
        silent; in ``test_mode`` every key slice is kept.

        Returns:
            list[dict]: the kept ``data_info`` s.
        """
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = [
            info for info in self.data_list
            if (not filter_empty_gt or info['instances'])
            and min(info['width'], info['height']) >= min_size
        ]
        if len(kept) != len(self.data_list):
            print_log(f'DeepLesion {self.split}: filter_cfg={self.filter_cfg} dropped '
                      f'{len(self.data_list) - len(kept)} of {len(self.data_list)} key slices',
                      logger='current', level=logging.WARNING)
        return kept

    def get_split_statistics(self) -> Dict[str, int]:
        """Counts of the loaded items: ``images``, ``lesions``, ``patients``, ``noisy_lesions``."""
        infos = [self.get_data_info(i) for i in range(len(self))]
        return dict(
            images=len(infos),
            lesions=sum(len(info['instances']) for info in infos),
            patients=len({info['patient_index'] for info in infos}),
            noisy_lesions=sum(inst['possibly_noisy'] for info in infos
                              for inst in info['instances']))

"""The NIH DeepLesion dataset, read straight from the official release (no conversion step).

Expected layout under ``data_root`` (the unpacked release)::

    DL_info.csv
    Images_png/<patient:06d>_<study:02d>_<series:02d>/<slice:03d>.png   (uint16, HU + 32768)

The annotations come from ``DL_info.csv`` (all splits in one file, one row per lesion) or from
one of the official MP3D / MVP-Net JSON files (``deeplesion_<split>.json``, one split per
file, :mod:`.deeplesion_json`); the format is recognised from the file's content.

One dataset item = one key slice with all lesions annotated on it. Boxes are 0-based
``[x1, y1, x2, y2]``: the csv's 1-based coordinates minus 1, the JSON's ``[x, y, w, h]`` as
``[x, y, x + w, y + h]`` (the same box for the same lesion).
"""
import dataclasses
import logging
import math
import os.path as osp
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from mmengine.logging import print_log
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from .deeplesion_json import (DeepLesionJSONAnnotation, DeepLesionJSONImage,
                              annotation_file_format, read_deeplesion_json)
from .dl_info import SPLIT_CODES, SPLIT_NAMES, DLInfoRow, read_dl_info, slice_file_name
from .transforms.loading import annotation_source, check_image_size, read_png_size

__all__ = ['DeepLesionDataset']


def _split_code(split: Union[str, int]) -> int:
    if isinstance(split, str) and split.lower() in SPLIT_CODES:
        return SPLIT_CODES[split.lower()]
    if isinstance(split, (int, np.integer)) and not isinstance(split, bool) and split in (1, 2, 3):
        return int(split)
    raise ValueError(f"split must be 'train', 'val', 'test' or 1, 2, 3, got {split!r}")


def _split_name(split: Union[str, int]) -> str:
    return SPLIT_NAMES[_split_code(split)]


def _split_in_file_name(path: str) -> Optional[str]:
    """The split a JSON file's name states (``deeplesion_test.json`` -> 'test'), or None."""
    words = re.split(r'[^a-z]+', osp.splitext(osp.basename(path))[0].lower())
    named = [name for name in SPLIT_CODES if name in words]
    return named[0] if len(named) == 1 else None


@dataclass
class _KeySlice:
    """One key slice as read from the annotation file, before parsing.

    ``lesions`` are :class:`DLInfoRow` s (csv) or :class:`DeepLesionJSONAnnotation` s (JSON);
    ``image`` is the JSON image record (None for csv).
    """
    patient_index: int
    lesions: List[Union[DLInfoRow, DeepLesionJSONAnnotation]]
    image: Optional[DeepLesionJSONImage] = None

    @staticmethod
    def is_noisy(lesion: Union[DLInfoRow, DeepLesionJSONAnnotation]) -> bool:
        return bool(lesion.possibly_noisy if isinstance(lesion, DLInfoRow) else lesion.noisy)


@DATASETS.register_module()
class DeepLesionDataset(BaseDetDataset):
    """DeepLesion key slices with their lesion boxes, from ``DL_info.csv`` or the official
    JSON files, and ``Images_png``.

    Each ``data_info`` (see :meth:`parse_data_info`) has: ``img_path`` (key slice PNG),
    ``img_id``, ``width``, ``height``, ``series_dir``, ``key_slice``, ``slice_interval``
    (mm, z spacing), ``pixel_spacing`` (mm/px, x spacing), ``slice_range``,
    ``dicom_windows`` (distinct ``(low, high)`` HU pairs), ``patient_index``,
    ``study_index``, ``series_id`` and ``instances``: one dict per lesion with ``bbox``
    (0-based ``[x1, y1, x2, y2]``), ``bbox_label`` (0), ``ignore_flag`` (0), ``lesion_type``
    (1..8, -1 unknown), ``long_diameter_mm``, ``short_diameter_mm`` and ``possibly_noisy``;
    a box that reaches past the image border is clipped to it (with a warning naming the
    row / record) and the instance also gets ``file_bbox``, the box as the file writes it
    (0-based), which the ``'mp3d'`` FROC protocol evaluates against.

    Where the two annotation formats differ:

    =====================  ==============================  ===============================
    field                  ``DL_info.csv``                 official JSON
    =====================  ==============================  ===============================
    ``img_id``             ``csv_row - 2`` of the key      the image record's ``id``
                           slice's first row
    ``slice_range``        ``Slice_range``                 None (not in the file)
    ``lesion_type``        ``Coarse_lesion_type``          -1 (not in the file)
    ``*_diameter_mm``      ``Lesion_diameters_Pixel_`` x   NaN (not in the file)
                           the x spacing
    lesion reference       ``csv_row``                     ``ann_id`` (the record's ``id``)
    =====================  ==============================  ===============================

    So with a JSON file the FROC metric's lesion type and size breakdowns are empty (n/a).

    Args:
        data_root: the unpacked release (folder holding ``DL_info.csv``).
        ann_file: annotation file relative to ``data_root``: ``DL_info.csv`` or an
            official ``deeplesion_<split>.json`` (recognised from the content).
            Defaults to 'DL_info.csv'.
        data_prefix: ``img`` = PNG root relative to ``data_root``.
            Defaults to ``dict(img='Images_png/')``.
        split: 'train' / 'val' / 'test' or the ``Train_Val_Test`` code
            1 / 2 / 3. With the csv it selects the rows (None: 'train'). A JSON file is one
            split: where its name states one (``deeplesion_test.json``) a different ``split``
            is an error, otherwise ``split`` only names the split in the log.
            Defaults to None.
        exclude_noisy: drop the lesions flagged ``Possibly_noisy`` (csv) / ``noisy``
            (JSON) and the key slices left without lesions, as the published 3DCE / MULAN /
            AlignShift evaluations do (the release's test set: 4,831 images / 4,927 lesions ->
            4,817 / 4,912). The official MP3D code keeps them. Defaults to True.
        data_fraction: keep this fraction of the split's *patients* (0 < f <= 1,
            rounded, at least one patient), for the paper's Table 5. Patients are taken in the
            order of one random permutation drawn with ``fraction_seed``, so for one seed a
            smaller fraction is a subset of a larger one. Defaults to 1.0.
        fraction_seed: seed of that permutation. Defaults to 0.
        check_files: check at load time that every key slice PNG exists (raises
            FileNotFoundError naming the csv row / JSON record) and that its size (read from
            the PNG header) is the annotated one (ValueError naming the rows / record).
            Defaults to True.
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
                 split: Optional[Union[str, int]] = None,
                 exclude_noisy: bool = True,
                 data_fraction: float = 1.0,
                 fraction_seed: int = 0,
                 check_files: bool = True,
                 **kwargs) -> None:
        self.requested_split = None if split is None else _split_name(split)
        self.split = self.requested_split or 'train'
        if not 0.0 < float(data_fraction) <= 1.0:
            raise ValueError(f'data_fraction must be in (0, 1], got {data_fraction!r}')
        if 'img' not in data_prefix:
            raise ValueError("data_prefix needs the key 'img' (the PNG root, e.g. "
                             f"dict(img='Images_png/')), got {data_prefix!r}")
        self.exclude_noisy = bool(exclude_noisy)
        self.data_fraction = float(data_fraction)
        self.fraction_seed = int(fraction_seed)
        self.check_files = bool(check_files)
        self.annotation_format = None  # 'csv' or 'json', known once the file is read
        super().__init__(*args, ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the annotation file, keep the split, drop noisy lesions and patients as
        configured, parse each key slice.

        Returns:
            One ``data_info`` per key slice, in file order.
        """
        self.annotation_format = annotation_file_format(self.ann_file)
        if self.annotation_format == 'json':
            key_slices = self._json_key_slices()
        else:
            key_slices = self._csv_key_slices()
        noun = 'Possibly_noisy' if self.annotation_format == 'csv' else 'noisy'
        if self.exclude_noisy:
            lesions_before = sum(len(k.lesions) for k in key_slices)
            kept = []
            for key_slice in key_slices:
                clean = [les for les in key_slice.lesions if not _KeySlice.is_noisy(les)]
                if clean or not key_slice.lesions:  # a slice annotated without lesions stays
                    kept.append(dataclasses.replace(key_slice, lesions=clean))
            print_log(
                f'DeepLesion {self.split}: excluded '
                f'{lesions_before - sum(len(k.lesions) for k in kept)} {noun} lesion(s) of '
                f'{lesions_before}; {len(key_slices) - len(kept)} key slice(s) left without '
                'lesions dropped', logger='current')
            key_slices = kept
            if not key_slices:
                raise ValueError(f"{self.ann_file}: the split '{self.split}' has no key slice "
                                 f'left after excluding {noun} lesions')

        if self.data_fraction < 1.0:
            key_slices = self._subsample_patients(key_slices)

        data_list = [
            self.parse_data_info(dict(rows=k.lesions) if k.image is None else
                                 dict(image=k.image, annotations=k.lesions))
            for k in key_slices
        ]
        print_log(f'DeepLesion {self.split}: {len(data_list)} key slices, '
                  f'{sum(len(k.lesions) for k in key_slices)} lesions, '
                  f'{len({k.patient_index for k in key_slices})} patients '
                  f'(from {self.annotation_format} file {self.ann_file})', logger='current')
        return data_list

    def _csv_key_slices(self) -> List[_KeySlice]:
        """The split's rows of ``DL_info.csv``, grouped per key slice in csv order."""
        split_code = SPLIT_CODES[self.split]
        split_rows = [row for row in read_dl_info(self.ann_file)
                      if row.train_val_test == split_code]
        if not split_rows:
            raise ValueError(f"{self.ann_file}: the split '{self.split}' (Train_Val_Test = "
                             f'{split_code}) has no rows')
        groups: 'OrderedDict[str, List[DLInfoRow]]' = OrderedDict()
        for row in split_rows:
            groups.setdefault(row.file_name, []).append(row)
        return [_KeySlice(rows[0].patient_index, rows) for rows in groups.values()]

    def _json_key_slices(self) -> List[_KeySlice]:
        """The image records of an official JSON file (one split), in file order."""
        named = _split_in_file_name(self.ann_file)
        if named and self.requested_split and named != self.requested_split:
            raise ValueError(f"{self.ann_file}: the file holds the '{named}' split (one split "
                             f"per JSON file) but split='{self.requested_split}' was asked for")
        self.split = self.requested_split or named or 'json'
        images = read_deeplesion_json(self.ann_file)
        if not images:
            raise ValueError(f"{self.ann_file}: the file has no image record ('images' is "
                             'empty)')
        return [_KeySlice(image.series_ids[0], list(image.annotations), image)
                for image in images]

    def _subsample_patients(self, key_slices: List[_KeySlice]) -> List[_KeySlice]:
        patients = np.array(sorted({k.patient_index for k in key_slices}))
        order = np.random.default_rng(self.fraction_seed).permutation(patients.size)
        num_kept = max(1, int(round(self.data_fraction * patients.size)))
        kept = set(patients[order[:num_kept]].tolist())
        print_log(f'DeepLesion {self.split}: data_fraction={self.data_fraction} keeps '
                  f'{num_kept} of {patients.size} patients (fraction_seed='
                  f'{self.fraction_seed})', logger='current')
        return [k for k in key_slices if k.patient_index in kept]

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Turn the annotations of one key slice into a ``data_info`` dict.

        Args:
            raw_data_info: ``rows``: the :class:`DLInfoRow` s of one ``File_name``
                (at least one); or ``image``: a :class:`DeepLesionJSONImage` and
                ``annotations``: its kept :class:`DeepLesionJSONAnnotation` s.

        Returns:
            The ``data_info`` described in the class docstring.
        """
        if 'image' in raw_data_info:
            return self._parse_json_image(raw_data_info['image'], raw_data_info['annotations'])
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
        source = annotation_source([dict(csv_row=row.csv_row) for row in rows])
        img_path = self._key_slice_path(series_dir, first.key_slice_index, (width, height),
                                        source)
        windows: List[tuple] = []
        for row in rows:
            for window in row.dicom_windows:
                if window not in windows:
                    windows.append(window)
        pixel_spacing = first.spacing_mm_px[0]
        instances = []
        for row in rows:
            box = np.asarray(row.bounding_box, dtype=np.float64) - 1.0  # 1-based -> 0-based
            instances.append(dict(
                **self._box_fields(box, width, height, f"row {row.csv_row}, column "
                                   f"'Bounding_boxes'", f'{list(row.bounding_box)} (1-based)'),
                bbox_label=0,
                ignore_flag=0,
                lesion_type=row.coarse_lesion_type,
                long_diameter_mm=float(row.lesion_diameters_pixel[0] * pixel_spacing),
                short_diameter_mm=float(row.lesion_diameters_pixel[1] * pixel_spacing),
                possibly_noisy=row.possibly_noisy,
                csv_row=row.csv_row))
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
            instances=instances)

    def _parse_json_image(self, image: DeepLesionJSONImage,
                          annotations: List[DeepLesionJSONAnnotation]) -> dict:
        """The ``data_info`` of one image record of an official JSON file."""
        series_dir = osp.join(self.data_prefix['img'], image.series_folder)
        source = f'image id {image.image_id}'
        img_path = self._key_slice_path(series_dir, image.key_slice,
                                        (image.width, image.height), source)
        patient_index, study_index, series_id = image.series_ids
        instances = [
            dict(**self._box_fields(np.asarray(ann.bbox_xyxy, dtype=np.float64), image.width,
                                    image.height, f"annotation id {ann.ann_id}, 'bbox'",
                                    f'{list(ann.bbox_xywh)} ([x, y, w, h])'),
                 bbox_label=0,
                 ignore_flag=0,
                 lesion_type=-1,
                 long_diameter_mm=math.nan,
                 short_diameter_mm=math.nan,
                 possibly_noisy=ann.noisy,
                 ann_id=ann.ann_id) for ann in annotations
        ]
        return dict(
            img_path=img_path,
            img_id=image.image_id,
            width=image.width,
            height=image.height,
            series_dir=series_dir,
            key_slice=image.key_slice,
            slice_interval=image.slice_interval,
            pixel_spacing=image.pixel_spacing,
            slice_range=None,
            dicom_windows=list(image.windows),
            patient_index=patient_index,
            study_index=study_index,
            series_id=series_id,
            instances=instances)

    def _key_slice_path(self, series_dir: str, key_slice: int, size_wh: Tuple[int, int],
                        source: str) -> str:
        """The key slice's PNG path; with ``check_files``, checked to exist at ``size_wh``."""
        img_path = osp.join(series_dir, slice_file_name(key_slice))
        if self.check_files:
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'{self.ann_file}: {source}: key slice file '
                                        f'{img_path} not found')
            try:
                check_image_size(img_path, read_png_size(img_path), size_wh, source)
            except ValueError as error:
                raise ValueError(f'{self.ann_file}: {error}') from None
        return img_path

    def _box_fields(self, box: np.ndarray, width: int, height: int, where: str,
                    as_written: str) -> Dict[str, List[float]]:
        """An instance's ``bbox``: the 0-based ``(4,)`` ``[x1, y1, x2, y2]`` box clipped to the
        image (:meth:`_clip_box`), and, where clipping changed it, ``file_bbox``: the box as the
        file writes it (0-based), which the ``'mp3d'`` FROC protocol evaluates against."""
        clipped = self._clip_box(box, width, height, where, as_written)
        if clipped == box.tolist():
            return dict(bbox=clipped)
        return dict(bbox=clipped, file_bbox=box.tolist())

    def _clip_box(self, box: np.ndarray, width: int, height: int, where: str,
                  as_written: str) -> List[float]:
        """Clip a 0-based ``(4,)`` ``[x1, y1, x2, y2]`` box to the image, warning when it was
        outside; a box entirely outside is an error naming ``where``."""
        clipped = box.copy()
        clipped[0::2] = clipped[0::2].clip(0, width - 1)
        clipped[1::2] = clipped[1::2].clip(0, height - 1)
        if not np.array_equal(clipped, box):
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                raise ValueError(f'{self.ann_file}: {where}: box {as_written} lies outside '
                                 f'the {width}x{height} image')
            warnings.warn(
                f'{self.ann_file}: {where}: box {as_written} extends outside the '
                f'{width}x{height} image; clipped to 0-based '
                f'{[round(v, 3) for v in clipped.tolist()]}', stacklevel=4)
        return clipped.tolist()

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (training only): ``filter_empty_gt`` drops key slices without
        boxes, ``min_size`` drops images whose width or height is smaller. Logged, never
        silent; in ``test_mode`` every key slice is kept.

        Returns:
            The kept ``data_info`` s.
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

"""The official MP3D / MVP-Net annotation files of DeepLesion (COCO-style JSON): reader and writer.

The official MP3D code base trains and evaluates from MVP-Net's ``deeplesion_train.json``,
``deeplesion_val.json`` and ``deeplesion_test.json`` (one file per split). Their schema, as
this module reads and writes it::

    {"images": [{"id": 4794, "file_name": "000001_01_01/109.png", "width": 512,
                 "height": 512, "slice_no": 109, "spacing": 0.488281, "slice_intv": 5.0,
                 "z_position": 0.434454, "windows": [-175.0, 275.0]}, ...],
     "annotations": [{"id": 4890, "image_id": 4794, "category_id": 1,
                      "bbox": [225.169, 89.0204, 15.083, 21.9566], "area": 331.17,
                      "iscrowd": 0, "noisy": 0, "segmentation": [[]]}, ...],
     "categories": [{"id": 1, "name": "Lesion"}]}

``file_name`` is relative to ``Images_png/``; ``bbox`` is ``[x, y, w, h]`` in 0-based pixels,
i.e. ``[x1 - 1, y1 - 1, x2 - x1, y2 - y1]`` of ``DL_info.csv``'s 1-based ``Bounding_boxes``,
so the 0-based ``[x1, y1, x2, y2]`` box of the dataset is ``[x, y, x + w, y + h]`` from either
file. ``spacing`` is the in-plane pixel spacing and ``slice_intv`` the slice interval (mm);
``slice_no``, ``z_position``, ``windows`` and ``noisy`` are optional on reading (``noisy``
defaults to 0). The files carry neither lesion type, lesion diameters nor the stored slice
range of ``DL_info.csv``.

A key slice has one image record (a second record of the same ``file_name`` is an error:
merged, the predictions' ``img_id`` would be ambiguous), and a lesion is listed once (the
same box twice on one key slice is an error, the rule of ``DL_info.csv`` too).

Which format an annotation file is in is recognised from its content
(:func:`annotation_file_format`), so one ``ann_file`` argument takes either.
"""
import json
import math
import re
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils.json_files import loads_json
from ..utils.safe_files import atomic_write
from ..utils.validation import box_size_problem, ct_spacing_problem
from .dl_info import DLInfoRow, LesionsListedOnce, slice_file_name

__all__ = [
    'LESION_CATEGORY', 'DeepLesionJSONAnnotation', 'DeepLesionJSONImage',
    'annotation_file_format', 'read_deeplesion_json', 'write_deeplesion_json'
]

#: The one category of the official files.
LESION_CATEGORY: Dict[str, object] = {'id': 1, 'name': 'Lesion'}

_FILE_NAME_PATTERN = re.compile(r'^(\d+)_(\d+)_(\d+)/(\d+)\.png$')


@dataclass(frozen=True)
class DeepLesionJSONAnnotation:
    """One lesion record of an official JSON file.

    Attributes:
        ann_id: the record's ``id``.
        bbox_xywh: ``[x, y, w, h]``, 0-based pixels,
            ``w > 0``, ``h > 0``.
        noisy: the ``noisy`` flag (``Possibly_noisy`` of ``DL_info.csv``).
    """
    ann_id: int
    bbox_xywh: Tuple[float, float, float, float]
    noisy: bool

    @property
    def bbox_xyxy(self) -> Tuple[float, float, float, float]:
        """``[x1, y1, x2, y2]`` = ``[x, y, x + w, y + h]`` (0-based pixels)."""
        x, y, w, h = self.bbox_xywh
        return (x, y, x + w, y + h)


@dataclass(frozen=True)
class DeepLesionJSONImage:
    """One key-slice record of an official JSON file, with its lesions in file order.

    Attributes:
        image_id: the record's ``id``.
        file_name: ``'<patient>_<study>_<series>/<slice>.png'``, relative to
            ``Images_png/``.
        width, height: image size in pixels.
        pixel_spacing: ``spacing``, mm per pixel in x and y.
        slice_interval: ``slice_intv``, mm between slices.
        windows: ``windows`` as ``(low, high)`` HU pairs
            (empty when the record has none).
        annotations: the lesions of this image.
    """
    image_id: int
    file_name: str
    width: int
    height: int
    pixel_spacing: float
    slice_interval: float
    windows: Tuple[Tuple[float, float], ...]
    annotations: Tuple[DeepLesionJSONAnnotation, ...]

    @property
    def series_folder(self) -> str:
        """Folder of the series under ``Images_png/``, e.g. ``'000001_01_01'``."""
        return self.file_name.split('/')[0]

    @property
    def key_slice(self) -> int:
        """The slice file number, e.g. 109 for ``'000001_01_01/109.png'``."""
        return int(_FILE_NAME_PATTERN.match(self.file_name).group(4))

    @property
    def series_ids(self) -> Tuple[int, int, int]:
        """``(patient_index, study_index, series_id)`` from the file name."""
        return tuple(int(g) for g in _FILE_NAME_PATTERN.match(self.file_name).groups()[:3])


def annotation_file_format(path: str) -> str:
    """``'json'`` if the file's first non-blank character is ``{``, else ``'csv'``.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
    """
    try:
        with open(path, 'rb') as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise FileNotFoundError(f'DeepLesion annotation file not found: {path}') from None
    head = head.lstrip(b'\xef\xbb\xbf').lstrip()
    return 'json' if head.startswith(b'{') else 'csv'


class _RecordChecker:
    """Reads the fields of one JSON record, raising errors that name file, list, index and id."""

    def __init__(self, path: str, where: str, record: object) -> None:
        self.path = path
        self.where = where
        if not isinstance(record, dict):
            raise self.error(f'expected an object, got {type(record).__name__}')
        self.record = record
        if isinstance(record.get('id'), Integral):
            self.where = f"{where} (id {record['id']})"

    def error(self, message: str) -> ValueError:
        return ValueError(f'{self.path}: {self.where}: {message}')

    def field(self, key: str) -> object:
        if key not in self.record:
            raise self.error(f"missing field '{key}'")
        return self.record[key]

    def integer(self, key: str) -> int:
        value = self.field(key)
        if not isinstance(value, Integral) or isinstance(value, bool):
            raise self.error(f"'{key}' must be an integer, got {value!r}")
        return int(value)

    def numbers(self, key: str, count: Optional[int] = None) -> Tuple[float, ...]:
        value = self.field(key)
        if isinstance(value, Real) and not isinstance(value, bool) and count is None:
            value = [value]
        if (not isinstance(value, (list, tuple))
                or not all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
                or not all(math.isfinite(v) for v in value)
                or (count is not None and len(value) != count)):
            wanted = f'{count} finite numbers' if count else 'finite numbers'
            raise self.error(f"'{key}' must be a list of {wanted}, got {value!r}")
        return tuple(float(v) for v in value)

    def number(self, key: str) -> float:
        value = self.field(key)
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise self.error(f"'{key}' must be a finite number, got {value!r}")
        return float(value)


def _parse_image(path: str, index: int, record: object) -> Tuple[int, dict]:
    check = _RecordChecker(path, f'images[{index}]', record)
    image_id = check.integer('id')
    file_name = check.field('file_name')
    match = _FILE_NAME_PATTERN.match(file_name) if isinstance(file_name, str) else None
    if match is None:
        raise check.error(f"'file_name' must be '<patient>_<study>_<series>/<slice>.png' "
                          f'(relative to Images_png/), got {file_name!r}')
    if 'slice_no' in check.record and check.integer('slice_no') != int(match.group(4)):
        raise check.error(f"'slice_no' {check.record['slice_no']} is not the slice number of "
                          f"'file_name' {file_name!r}")
    width, height = check.integer('width'), check.integer('height')
    if width < 1 or height < 1:
        raise check.error(f"'width' and 'height' must be >= 1, got {width}x{height}")
    pixel_spacing, slice_interval = check.number('spacing'), check.number('slice_intv')
    problem = ct_spacing_problem((pixel_spacing, pixel_spacing), slice_interval)
    if problem:
        raise check.error(f"'spacing'/'slice_intv': {problem}")
    windows: Tuple[Tuple[float, float], ...] = ()
    if 'windows' in check.record:
        values = check.numbers('windows')
        if not values or len(values) % 2:
            raise check.error(f"'windows' must hold (low, high) HU pairs, got {values!r}")
        windows = tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))
    return image_id, dict(image_id=image_id, file_name=file_name, width=width, height=height,
                          pixel_spacing=pixel_spacing, slice_interval=slice_interval,
                          windows=windows)


def _parse_annotation(path: str, index: int, record: object,
                      category_id: int) -> Tuple[int, DeepLesionJSONAnnotation]:
    check = _RecordChecker(path, f'annotations[{index}]', record)
    ann_id = check.integer('id')
    image_id = check.integer('image_id')
    if 'category_id' in check.record and check.integer('category_id') != category_id:
        raise check.error(f"'category_id' {check.record['category_id']} is not the lesion "
                          f'category ({category_id})')
    bbox = check.numbers('bbox', 4)
    problem = box_size_problem((bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]))
    if problem:
        raise check.error(f"'bbox' [x, y, w, h] must have w > 0 and h > 0: {problem} "
                          f'(bbox {list(bbox)})')
    noisy = check.integer('noisy') if 'noisy' in check.record else 0
    if noisy not in (0, 1):
        raise check.error(f"'noisy' must be 0 or 1, got {noisy}")
    return image_id, DeepLesionJSONAnnotation(ann_id=ann_id, bbox_xywh=bbox, noisy=bool(noisy))


def _lesion_category_id(path: str, categories: object) -> int:
    if categories is None:
        return int(LESION_CATEGORY['id'])
    if not isinstance(categories, list) or len(categories) != 1:
        raise ValueError(f"{path}: 'categories' must hold the one lesion category, e.g. "
                         f'[{json.dumps(LESION_CATEGORY)}], got {categories!r}')
    return _RecordChecker(path, 'categories[0]', categories[0]).integer('id')


def read_deeplesion_json(path: str) -> List[DeepLesionJSONImage]:
    """Read and validate an official MVP-Net / MP3D DeepLesion annotation file.

    Args:
        path: the JSON file (schema in the module docstring).

    Returns:
        One per ``images`` record, in file order, each with its
        annotations in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not JSON (or nested deeper than
            :data:`~mp3d_mmdet.utils.json_files.MAX_JSON_DEPTH` levels), no
            ``images``/``annotations`` lists, a malformed record, a duplicated image or
            annotation id, two image records of one key slice, an annotation of an unknown
            image, or one lesion listed twice (the same box on the same key slice,
            :class:`~mp3d_mmdet.datasets.dl_info.LesionsListedOnce`, the rule of
            ``DL_info.csv`` too); the message names the file, the list, the record's index and
            its id.
    """
    try:
        with open(path, 'rb') as handle:
            content = loads_json(handle.read())
    except FileNotFoundError:
        raise FileNotFoundError(f'DeepLesion annotation file not found: {path}') from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{path}: not a JSON annotation file ({error})') from None
    if not isinstance(content, dict) or not all(
            isinstance(content.get(key), list) for key in ('images', 'annotations')):
        raise ValueError(f"{path}: expected a JSON object with the lists 'images' and "
                         "'annotations' (the MVP-Net / MP3D DeepLesion format)")
    category_id = _lesion_category_id(path, content.get('categories'))

    images: Dict[int, dict] = {}
    record_of_file: Dict[str, str] = {}
    for index, record in enumerate(content['images']):
        image_id, image = _parse_image(path, index, record)
        if image_id in images:
            raise ValueError(f'{path}: images[{index}]: image id {image_id} is used twice')
        where = f'images[{index}] (id {image_id})'
        if image['file_name'] in record_of_file:
            raise ValueError(f"{path}: {where}: 'file_name' {image['file_name']!r} is already "
                             f'the key slice of {record_of_file[image["file_name"]]}; one image '
                             'record per key slice (list all its lesions under one image id)')
        record_of_file[image['file_name']] = where
        images[image_id] = dict(image, annotations=[])
    ann_ids = set()
    listed_once = LesionsListedOnce(path)
    for index, record in enumerate(content['annotations']):
        image_id, annotation = _parse_annotation(path, index, record, category_id)
        if annotation.ann_id in ann_ids:
            raise ValueError(f'{path}: annotations[{index}]: annotation id {annotation.ann_id} '
                             'is used twice')
        ann_ids.add(annotation.ann_id)
        if image_id not in images:
            raise ValueError(f'{path}: annotations[{index}] (id {annotation.ann_id}): '
                             f"'image_id' {image_id} is not the id of any image")
        listed_once.add(images[image_id]['file_name'], annotation.bbox_xyxy,
                        f'annotations[{index}] (id {annotation.ann_id})')
        images[image_id]['annotations'].append(annotation)
    return [DeepLesionJSONImage(**dict(image, annotations=tuple(image['annotations'])))
            for image in images.values()]


def write_deeplesion_json(path: str, rows: Sequence[DLInfoRow]) -> None:
    """Write ``DL_info.csv`` rows (typically one split) as an official JSON annotation file.

    One image record per key slice (ids from 1, in order of first appearance), one annotation
    per row (ids from 1, in row order); ``bbox`` is ``[x1 - 1, y1 - 1, x2 - x1, y2 - y1]``
    of the row's 1-based box, ``windows`` the key slice's first DICOM window. The file is
    written whole or not at all.

    Args:
        path: output file.
        rows: the rows to write.
    """
    images: Dict[str, dict] = {}
    annotations = []
    for row in rows:
        if row.file_name not in images:
            width, height = row.image_size
            images[row.file_name] = dict(
                file_name=f'{row.series_folder}/{slice_file_name(row.key_slice_index)}',
                height=height, width=width, id=len(images) + 1,
                slice_no=row.key_slice_index, spacing=row.spacing_mm_px[0],
                slice_intv=row.spacing_mm_px[2],
                z_position=row.normalized_lesion_location[2],
                windows=list(row.dicom_windows[0]))
        x1, y1, x2, y2 = row.bounding_box
        w, h = x2 - x1, y2 - y1
        annotations.append(dict(image_id=images[row.file_name]['id'],
                                bbox=[x1 - 1.0, y1 - 1.0, w, h], area=w * h, iscrowd=0,
                                category_id=LESION_CATEGORY['id'], id=len(annotations) + 1,
                                noisy=int(row.possibly_noisy), segmentation=[[]]))
    with atomic_write(path) as handle:
        json.dump(dict(images=list(images.values()), annotations=annotations,
                       categories=[LESION_CATEGORY]), handle)

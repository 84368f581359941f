"""The per-image record the FROC metric keeps: predictions, ground truth and lesion metadata.

One record per evaluated image (DeepLesion key slice), made only of Python scalars and NumPy
arrays so that mmengine can gather records from all ranks (``collect_device`` 'cpu' or 'gpu')
and pickle them. All boxes are ``[x1, y1, x2, y2]`` in 0-based pixel coordinates of the
*original* key-slice image.

Record keys:
    img_id (int | str): the dataset's image id.
    img_path (str | None): the key-slice image, for reference.
    pred_bboxes: ``(n, 4)`` float32 detections.
    pred_scores: ``(n,)`` float32 detection scores.
    gt_bboxes: ``(g, 4)`` float64 lesions (instances with ``ignore_flag`` 1 left out).
    gt_lesion_types: ``(g,)`` int64 DeepLesion coarse lesion type, 1..8, or -1 (unknown).
    gt_long_diameters_mm: ``(g,)`` float64 RECIST long diameter, NaN when unknown.
    slice_interval: float, z spacing in mm of the series, NaN when unknown.

Records are saved as JSON (:func:`dump_records_json`) for ``mp3d-eval-froc``.
"""
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ...utils.json_files import loads_json
from ...utils.pickle_allowlist import load_pickle_allowlisted
from ...utils.safe_files import atomic_write

__all__ = ['record_from_data_sample', 'dump_records_json', 'load_records_json',
           'load_detection_dump', 'RECORDS_JSON_FORMAT']

#: Value of the ``format`` field of the JSON files written by :func:`dump_records_json`.
RECORDS_JSON_FORMAT = 'mp3d_mmdet.froc_records'
_JSON_VERSION = 1


def record_from_data_sample(data_sample: Any,
                            require_metadata: bool = True,
                            clipped_gt: bool = True) -> Dict[str, Any]:
    """Build the record of one image from a data sample as mmengine's Evaluator passes it.

    The ground truth comes from the metainfo ``instances`` when the sample has it, else from
    ``gt_instances`` (see :mod:`.froc_inputs`: boxes in original image coordinates, without
    lesion type or size).

    Args:
        data_sample: ``DetDataSample.to_dict()`` output (what the Evaluator passes, and what
            mmdet's ``DumpDetResults`` pickles) or a ``DetDataSample``, with
            ``pred_instances`` (``bboxes`` ``(n, 4)``, ``scores`` ``(n,)``, tensors or arrays,
            original image coordinates), the metainfo ``img_id``, the ground truth as
            ``instances`` (list of dicts with ``bbox``, ``ignore_flag``, ``lesion_type``,
            ``long_diameter_mm``) or ``gt_instances`` (``bboxes`` ``(g, 4)``), and optionally
            ``slice_interval`` and ``img_path``.
        require_metadata: demand ``instances`` with each lesion's ``lesion_type`` and
            ``long_diameter_mm``, and ``slice_interval``; when False missing values become
            -1 / NaN (unknown: in no breakdown subset).
        clipped_gt: take each lesion's ``bbox`` (clipped to the image by the dataset); False:
            its ``file_bbox`` where it has one (the box as the annotation file writes it,
            :attr:`~mp3d_mmdet.evaluation.functional.FROCProtocol.clip_gt_to_image`).

    Returns:
        The record (see the module docstring).

    Raises:
        KeyError: a required key is missing; the message names the image and the key.
        ValueError: malformed boxes or scores.
    """
    if hasattr(data_sample, 'to_dict'):  # a DetDataSample passed directly
        data_sample = data_sample.to_dict()
    img_id = data_sample.get('img_id', '?')
    where = f'data sample with img_id={img_id!r}'
    for key in ('img_id', 'pred_instances'):
        if key not in data_sample:
            raise KeyError(f'{where} has no {key!r}')
    pred = data_sample['pred_instances']
    if not (hasattr(pred, 'keys') and 'bboxes' in pred and 'scores' in pred):
        raise ValueError(f"{where}: 'pred_instances' must hold 'bboxes' and 'scores', got "
                         f'{_summary(pred)}')
    try:
        pred_bboxes = _to_numpy(pred['bboxes'], np.float32)
        pred_scores = _to_numpy(pred['scores'], np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f'{where}: pred_instances bboxes/scores are not numbers ({error})'
                         ) from None
    if pred_bboxes.size == 0:
        pred_bboxes = pred_bboxes.reshape(0, 4)
    if pred_bboxes.ndim != 2 or pred_bboxes.shape[1] != 4 or pred_scores.shape != (
            len(pred_bboxes), ):
        raise ValueError(f'{where}: pred_instances must hold bboxes (n, 4) and scores (n,), got '
                         f'{pred_bboxes.shape} and {pred_scores.shape}')

    if 'instances' in data_sample or require_metadata:
        gt_bboxes, lesion_types, diameters = _instances_ground_truth(data_sample, where,
                                                                     require_metadata, clipped_gt)
    else:
        gt_bboxes = _packed_ground_truth(data_sample, where)
        lesion_types, diameters = [-1] * len(gt_bboxes), [math.nan] * len(gt_bboxes)

    if require_metadata and 'slice_interval' not in data_sample:
        raise KeyError(f"{where} has no 'slice_interval' (add it to PackDetInputs' meta_keys, or "
                       f'set breakdowns=False)')
    return dict(
        img_id=_plain(data_sample['img_id']),
        img_path=data_sample.get('img_path'),
        pred_bboxes=pred_bboxes,
        pred_scores=pred_scores,
        gt_bboxes=np.array(gt_bboxes, dtype=np.float64).reshape(-1, 4),
        gt_lesion_types=np.array(lesion_types, dtype=np.int64),
        gt_long_diameters_mm=np.array(diameters, dtype=np.float64),
        slice_interval=float(data_sample.get('slice_interval', math.nan)))


def _instances_ground_truth(data_sample: Mapping[str, Any], where: str, require_metadata: bool,
                            clipped_gt: bool = True
                            ) -> Tuple[List[np.ndarray], List[int], List[float]]:
    """Boxes, lesion types and long diameters of the metainfo ``instances`` (those with
    ``ignore_flag`` 1 left out); ``clipped_gt`` False takes a lesion's ``file_bbox``."""
    if 'instances' not in data_sample:
        raise KeyError(f"{where} has no 'instances' (add it to PackDetInputs' meta_keys)")
    instances = data_sample['instances']
    if not isinstance(instances, (list, tuple)) or not all(
            isinstance(instance, dict) and 'bbox' in instance for instance in instances):
        raise ValueError(f"{where}: 'instances' must be a list of dicts with a 'bbox', got "
                         f'{_summary(instances)}')
    gt_bboxes, lesion_types, diameters = [], [], []
    for k, instance in enumerate(instances):
        if instance.get('ignore_flag', 0):
            continue
        box = instance['bbox'] if clipped_gt else instance.get('file_bbox', instance['bbox'])
        try:
            bbox = np.asarray(box, dtype=np.float64)
        except (TypeError, ValueError):
            bbox = np.zeros(0)
        if bbox.shape != (4, ):
            raise ValueError(f'{where}: instances[{k}]["bbox"] must be [x1, y1, x2, y2], got '
                             f'{instance["bbox"]!r}')
        gt_bboxes.append(bbox)
        if require_metadata:
            for key in ('lesion_type', 'long_diameter_mm'):
                if key not in instance:
                    raise KeyError(f'{where}: instances[{k}] has no {key!r}, needed for the '
                                   f'breakdowns (or set breakdowns=False)')
        lesion_types.append(int(instance.get('lesion_type', -1)))
        diameters.append(float(instance.get('long_diameter_mm', math.nan)))
    return gt_bboxes, lesion_types, diameters


def _packed_ground_truth(data_sample: Mapping[str, Any], where: str) -> np.ndarray:
    """``(g, 4)`` boxes of ``gt_instances`` (``ignore_flag`` ones are packed apart, in
    ``ignored_instances``)."""
    boxes = (data_sample.get('gt_instances') or {}).get('bboxes')
    if boxes is None:
        raise KeyError(f"{where} has no ground truth: neither 'instances' in its metainfo (add "
                       "it to PackDetInputs' meta_keys) nor gt_instances.bboxes (load them with "
                       'LoadAnnotations after the resize)')
    boxes = _to_numpy(getattr(boxes, 'tensor', boxes), np.float64)  # mmdet's box types too
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'{where}: gt_instances.bboxes must be (g, 4), got {boxes.shape}')
    return boxes


def dump_records_json(records: Sequence[Mapping[str, Any]], path: str) -> None:
    """Write records to a JSON file (parent folders are created).

    Layout: ``{"format": RECORDS_JSON_FORMAT, "version": 1, "coordinates": ..., "images":
    [record, ...]}`` with arrays as nested lists and NaN as ``null``.
    """
    images = []
    for record in records:
        images.append(dict(
            img_id=_plain(record['img_id']),
            img_path=record.get('img_path'),
            pred_bboxes=np.asarray(record['pred_bboxes']).tolist(),
            pred_scores=np.asarray(record['pred_scores']).tolist(),
            gt_bboxes=np.asarray(record['gt_bboxes']).tolist(),
            gt_lesion_types=np.asarray(record['gt_lesion_types']).tolist(),
            gt_long_diameters_mm=[None if math.isnan(d) else d
                                  for d in np.asarray(record['gt_long_diameters_mm']).tolist()],
            slice_interval=(None if math.isnan(record['slice_interval']) else
                            float(record['slice_interval']))))
    content = dict(format=RECORDS_JSON_FORMAT, version=_JSON_VERSION,
                   coordinates='original image, 0-based pixels, [x1, y1, x2, y2]',
                   images=images)
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    with atomic_write(path) as f:
        json.dump(content, f)


def load_records_json(path: str) -> List[Dict[str, Any]]:
    """Read records written by :func:`dump_records_json`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not such a JSON file, or an image entry is malformed (the
            message names the file and the entry).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'prediction file not found: {path}')
    with open(path, 'rb') as f:
        try:
            content = loads_json(f.read())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f'{path} is not valid JSON: {error}') from None
    if not isinstance(content, dict) or content.get('format') != RECORDS_JSON_FORMAT:
        raise ValueError(f'{path} is not an FROC record file (expected "format": '
                         f'"{RECORDS_JSON_FORMAT}", as FROCMetric(outfile_prefix=...) writes)')
    if not isinstance(content.get('images'), list):
        raise ValueError(f"{path}: 'images' must be a list of image records, got "
                         f"{_summary(content.get('images', '<missing>'))}")
    records = []
    for k, image in enumerate(content['images']):
        try:
            pred_bboxes = np.array(image['pred_bboxes'], dtype=np.float32).reshape(-1, 4)
            pred_scores = np.array(image['pred_scores'], dtype=np.float32).reshape(-1)
            gt_bboxes = np.array(image['gt_bboxes'], dtype=np.float64).reshape(-1, 4)
            types = np.array(image['gt_lesion_types'], dtype=np.int64).reshape(-1)
            diameters = np.array([math.nan if d is None else d
                                  for d in image['gt_long_diameters_mm']],
                                 dtype=np.float64).reshape(-1)
            interval = image['slice_interval']
            record = dict(img_id=image['img_id'], img_path=image.get('img_path'),
                          pred_bboxes=pred_bboxes, pred_scores=pred_scores, gt_bboxes=gt_bboxes,
                          gt_lesion_types=types, gt_long_diameters_mm=diameters,
                          slice_interval=math.nan if interval is None else float(interval))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{path}: images[{k}] is malformed: {error!r}') from error
        if len(pred_scores) != len(pred_bboxes) or not (
                len(types) == len(diameters) == len(gt_bboxes)):
            raise ValueError(f'{path}: images[{k}] has inconsistent lengths (pred_bboxes '
                             f'{len(pred_bboxes)}, pred_scores {len(pred_scores)}, gt_bboxes '
                             f'{len(gt_bboxes)}, gt_lesion_types {len(types)}, '
                             f'gt_long_diameters_mm {len(diameters)})')
        records.append(record)
    return records


def load_detection_dump(path: str) -> List[Dict[str, Any]]:
    """Read the pickle of ``mim test mmdet CONFIG --checkpoint CKPT --out X.pkl`` safely.

    mmdet's ``DumpDetResults`` pickles a list of data-sample dicts. The file is unpickled
    with an allow-list of plain-data types
    (:func:`~mp3d_mmdet.utils.pickle_allowlist.load_pickle_allowlisted`): a pickle that
    would build anything else -- and so could run code -- is refused.

    Args:
        path: the ``.pkl`` file.

    Returns:
        One data-sample dict per image, each with ``img_id`` and
        ``pred_instances``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a plain-data pickle, or not a detection dump (the
            message names the file and the entry).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'prediction file not found: {path}')
    samples = load_pickle_allowlisted(path)
    if not isinstance(samples, list) or not all(isinstance(s, dict) for s in samples):
        raise ValueError(f'{path}: expected a list of data-sample dicts (as written by '
                         f'`mim test ... --out X.pkl`), got {type(samples).__name__}')
    for k, sample in enumerate(samples):
        if 'pred_instances' not in sample or 'img_id' not in sample:
            raise ValueError(f'{path}: entry {k} has no pred_instances/img_id: not a '
                             '`mim test --out` detection dump')
    return samples


def _to_numpy(value: Any, dtype: type) -> np.ndarray:
    """A tensor (any device) or array-like as a NumPy array of ``dtype``."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _summary(value: Any) -> str:
    """A short description of a value for a message: its repr, cut at 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _plain(value: Any) -> Any:
    """NumPy/torch scalars as Python scalars (JSON- and pickle-friendly)."""
    if hasattr(value, 'item') and np.ndim(value) == 0:
        return value.item()
    return value

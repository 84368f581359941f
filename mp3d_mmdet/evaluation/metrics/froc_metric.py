"""``FROCMetric``: DeepLesion lesion-detection evaluation for mmengine's val/test loops.

Sensitivities at the given false positives per image (FROC, under the protocol of 3DCE/MULAN/
AlignShift or of the official MP3D code, see
:mod:`mp3d_mmdet.evaluation.functional.froc_protocols`), their mean over 0.5-4 FPs (the
"average sensitivity" papers report), COCO-style AP at IoU 0.5 (pycocotools), and breakdowns
by lesion type, lesion size and slice interval.

How the breakdowns are computed (each follows the released code that published it):

* Lesion type (the 8 DeepLesion coarse types; type -1 "unknown" is in no type subset) and
  lesion size (RECIST long diameter < 10 mm, 10-30 mm, > 30 mm; a lesion without a diameter
  is in no size subset) are properties of *lesions*. The subset keeps every image and every
  detection and filters the ground truth, as the DeepLesion authors' MULAN code does for its
  per-tag detection accuracy (``eval_DL_detection``: ``sens_at_FP(all_boxes, gts_per_tag)``).
  In that code a detection that overlaps only lesions outside the subset is a false positive;
  ``out_of_subset_detections='ignore'`` makes it neither a hit nor a false positive instead.
* Slice interval (<= 2 mm, > 2 mm) is computed the same way, each lesion taking the slice
  interval of its image: the ground truth is filtered, all images and detections are kept
  (the rule the DeepLesion authors prescribe for every breakdown). AlignShift instead splits
  the images (each subset with its own images, detections and FP count); that is not done.
* A lesion whose type, size or slice interval is unknown is in no subset of that breakdown:
  ground truth read from ``gt_instances`` has no type or size, a data sample without
  ``slice_interval`` no interval (:mod:`.froc_inputs`). A subset without lesions gets NaN
  values; one warning per evaluation names all such subsets and what was unknown; nothing
  is dropped silently.

What is logged: the whole report (every subset) once per evaluation as a table, and the
headline metrics -- sensitivities, their mean, mAP -- as the metrics mmengine logs on one
line and records (``breakdown_metrics=True`` returns the subsets' values as metrics too).

Multi-process evaluation: each rank keeps one record of plain NumPy arrays per image
(:mod:`.froc_records`); mmengine gathers them (``collect_device`` 'cpu' or 'gpu'), rank 0
computes the metrics and writes the optional files, and the values are broadcast.
"""
import math
import os.path as osp
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from terminaltables import AsciiTable

from mmdet.registry import METRICS
from ...datasets.dl_info import LESION_TYPE_NAMES
from ..functional.coco_ap import coco_ap
from ..functional.froc import DEFAULT_FPS, FROCCurve, lesion_subset_froc_curves
from ..functional.froc_plot import plot_froc_curves
from ..functional.froc_protocols import FROCProtocol, check_fps, get_froc_protocol
from .froc_inputs import check_froc_pipeline, loop_pipelines
from .froc_records import dump_records_json, record_from_data_sample

__all__ = ['FROCMetric', 'SIZE_SUBSETS_MM', 'SLICE_INTERVAL_THR_MM', 'lesion_size_subsets']

#: Lesion size subsets: key name, then the long diameter range in mm, ``lo <= d <= hi`` for the
#: middle subset and strict at the open ends (``d < 10``, ``d > 30``).
SIZE_SUBSETS_MM: Tuple[Tuple[str, float, float], ...] = (
    ('size_lt10mm', -math.inf, 10.0),
    ('size_10-30mm', 10.0, 30.0),
    ('size_gt30mm', 30.0, math.inf),
)
#: Slice-interval split: ``<= 2 mm`` ("thin") vs ``> 2 mm`` ("thick").
SLICE_INTERVAL_THR_MM = 2.0

_OUT_OF_SUBSET_MODES = ('false_positive', 'ignore')


@dataclass
class _SubsetResult:
    """One row of the report."""
    name: str
    num_lesions: int
    num_images: int
    sensitivity: np.ndarray  # (len(fps),), NaN without lesions
    mean: float
    curve: Optional[FROCCurve]


@METRICS.register_module()
class FROCMetric(BaseMetric):
    """DeepLesion FROC sensitivities, their 0.5-4 mean, mAP@0.5 and breakdowns.

    Reads from each data sample: ``pred_instances.bboxes``/``scores`` (original image
    coordinates, i.e. the model's ``rescale=True`` output), the metainfo ``img_id`` and the
    ground truth in original image coordinates: the metainfo ``instances`` (``bbox``
    0-based ``[x1, y1, x2, y2]``, ``ignore_flag``, ``lesion_type``, ``long_diameter_mm``) when
    ``PackDetInputs`` packs them (the plugin's configs), else ``gt_instances`` (mmdet's default
    ``PackDetInputs``, annotations loaded after the resize); optionally ``slice_interval``
    and ``img_path``. Instances with ``ignore_flag`` 1 are left out of the ground truth.
    A test pipeline that gives neither form in original coordinates is refused before the
    first training (or test) iteration: :meth:`check_pipeline` runs on the dataloader of the
    val / test loop when mmengine sets :attr:`dataset_meta`, and on the config in the
    plugin's runner (:func:`mp3d_mmdet.utils.config.check_evaluator_inputs`).

    Metric keys (after the ``froc/`` prefix), with ``fps=(0.5, 1, 2, 4, 8, 16)``:
    ``sens@0.5`` ... ``sens@16``, ``mean_0.5-4``, ``mAP@0.5``; with ``breakdowns`` and
    ``breakdown_metrics``, for each subset ``S`` in ``type_bone``, ``type_abdomen``,
    ``type_mediastinum``, ``type_liver``, ``type_lung``, ``type_kidney``, ``type_soft_tissue``,
    ``type_pelvis``, ``size_lt10mm``, ``size_10-30mm``, ``size_gt30mm``, ``interval_le2mm``,
    ``interval_gt2mm``:
    ``S/sens@0.5`` ... ``S/sens@16`` and ``S/mean_0.5-4``. Sensitivities and AP are in
    ``[0, 1]``.

    Args:
        fps: false-positive-per-image rates to report sensitivity at.
        iou_thr: IoU threshold of a hit (FROC) and of a true positive (AP).
        legacy_plus_one: inclusive-pixel IoU (``x2 - x1 + 1``) or continuous coordinates,
            for FROC and AP alike; None: the ``protocol``'s.
        protocol: ``'deeplesion'`` (3DCE / MULAN / AlignShift: +1-pixel IoU, the curve's
            last point at a rate, held past its end) or ``'mp3d'`` (the official MP3D
            evaluation behind the MP3D paper's tables: IoU without +1, scipy ``interp1d``
            reading); named in the report. The official MP3D code also keeps the noisy
            lesions (``DeepLesionDataset(exclude_noisy=False)``).
        mean_fp_range: ``(lo, hi)``: the mean is taken over the ``fps`` within ``[lo, hi]``.
        compute_map: also compute COCO-style AP at ``iou_thr`` (pycocotools; seconds on the
            full DeepLesion test set).
        breakdowns: also report the lesion type / size / slice interval subsets (from
            ``instances``' ``lesion_type`` and ``long_diameter_mm`` and the ``slice_interval``
            of the data samples; lesions without them are in no subset).
        breakdown_metrics: also return the subsets' values as metrics (``S/sens@...``);
            by default they appear in the logged table only.
        out_of_subset_detections: in the lesion type and size subsets, a detection that
            overlaps (IoU >= ``iou_thr``) only lesions outside the subset is a
            ``'false_positive'`` (the DeepLesion authors' released code) or is ``'ignore'``-d.
        plot_froc: write the FROC curves (all lesions, size and interval subsets) to
            ``<out_dir>/froc_curve.png`` (overwritten at every evaluation).
        out_dir: folder for the plot; None: the run's log folder (``<work_dir>/<timestamp>``,
            from mmengine's current logger).
        outfile_prefix: when set, the per-image predictions and ground truth are written to
            ``<outfile_prefix>.froc_records.json`` (readable by ``mp3d-eval-froc``).
        collect_device: 'cpu' or 'gpu', how mmengine gathers results across ranks.
        prefix: metric key prefix; default ``'froc'``.
        collect_dir: temporary folder for 'cpu' gathering.
    """

    default_prefix: Optional[str] = 'froc'

    def __init__(self,
                 fps: Sequence[float] = DEFAULT_FPS,
                 iou_thr: float = 0.5,
                 legacy_plus_one: Optional[bool] = None,
                 protocol: Union[str, FROCProtocol] = 'deeplesion',
                 mean_fp_range: Tuple[float, float] = (0.5, 4.0),
                 compute_map: bool = True,
                 breakdowns: bool = True,
                 breakdown_metrics: bool = False,
                 out_of_subset_detections: str = 'false_positive',
                 plot_froc: bool = False,
                 out_dir: Optional[str] = None,
                 outfile_prefix: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.fps = tuple(float(f) for f in fps)
        if not self.fps or any(not (math.isfinite(f) and f > 0) for f in self.fps):
            raise ValueError(f'FROCMetric: fps must be a non-empty sequence of positive FP rates, '
                             f'got {fps!r}')
        try:
            check_fps(self.fps, distinct=True)
        except ValueError as error:
            raise ValueError(f'FROCMetric: {error}') from None
        if not 0.0 < iou_thr <= 1.0:
            raise ValueError(f'FROCMetric: iou_thr must be in (0, 1], got {iou_thr}')
        self.iou_thr = float(iou_thr)
        try:
            self.protocol: FROCProtocol = get_froc_protocol(protocol)
        except ValueError as error:
            raise ValueError(f'FROCMetric: {error}') from None
        self.legacy_plus_one = (self.protocol.legacy_plus_one if legacy_plus_one is None else
                                bool(legacy_plus_one))
        lo, hi = (float(v) for v in mean_fp_range)
        self.mean_fp_range = (lo, hi)
        self._mean_mask = np.array([lo <= f <= hi for f in self.fps])
        if not self._mean_mask.any():
            raise ValueError(f'FROCMetric: no fps value lies in mean_fp_range {mean_fp_range!r} '
                             f'(fps={self.fps})')
        self.compute_map = bool(compute_map)
        self.breakdowns = bool(breakdowns)
        self.breakdown_metrics = bool(breakdown_metrics)
        if out_of_subset_detections not in _OUT_OF_SUBSET_MODES:
            raise ValueError(f'FROCMetric: out_of_subset_detections must be one of '
                             f'{_OUT_OF_SUBSET_MODES}, got {out_of_subset_detections!r}')
        self.out_of_subset_detections = out_of_subset_detections
        self.plot_froc = bool(plot_froc)
        self.out_dir = out_dir
        self.outfile_prefix = outfile_prefix

    # ----------------------------------------------------------------------------- keys
    @property
    def mean_key(self) -> str:
        """Key of the mean sensitivity, e.g. ``'mean_0.5-4'``."""
        lo, hi = self.mean_fp_range
        return f'mean_{lo:g}-{hi:g}'

    @property
    def map_key(self) -> str:
        """Key of the COCO-style AP, e.g. ``'mAP@0.5'``."""
        return f'mAP@{self.iou_thr:g}'

    def sens_keys(self) -> List[str]:
        """Keys of the sensitivities, e.g. ``['sens@0.5', 'sens@1', ...]``."""
        return [f'sens@{f:g}' for f in self.fps]

    # ----------------------------------------------------------------------------- inputs
    @classmethod
    def check_pipeline(cls, pipeline: Sequence[Any], where: str) -> Optional[str]:
        """Where ``pipeline`` puts the ground truth, or refuse it
        (:func:`.froc_inputs.check_froc_pipeline`).

        Args:
            pipeline: transforms, as config dicts or built objects.
            where: the pipeline's name in messages.

        Returns:
            ``'instances'``, ``'gt_instances'`` or None (no ``PackDetInputs``: not checked).

        Raises:
            ConfigError: a one-line message naming the transforms and the fix.
        """
        return check_froc_pipeline(pipeline, where)

    @property
    def dataset_meta(self) -> Optional[dict]:
        """Meta info of the dataset (mmengine's ``BaseMetric.dataset_meta``)."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        """Keep the meta info; set by mmengine's val / test loop once it has built its
        dataloader, before the first iteration: its pipelines are checked here
        (:meth:`check_pipeline`).

        Raises:
            ConfigError: a pipeline the metric cannot read the ground truth from.
        """
        self._dataset_meta = dataset_meta
        for where, pipeline in loop_pipelines():
            self.check_pipeline(pipeline, where)

    # ----------------------------------------------------------------------------- mmengine
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep one record per data sample (see :mod:`.froc_records`).

        Args:
            data_batch: unused (the ground truth comes from the data samples).
            data_samples: ``DetDataSample.to_dict()`` outputs of the model.
        """
        for data_sample in data_samples:
            self.results.append(
                record_from_data_sample(data_sample, require_metadata=False,
                                        clipped_gt=self.protocol.clip_gt_to_image))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the metrics from the records of all images (rank 0 only).

        Args:
            results: records from :meth:`process`, gathered from all ranks.

        Returns:
            Metric name (without prefix) -> value; see the class docstring.

        Raises:
            ValueError: no image, or no ground-truth lesion in any image.
        """
        logger = MMLogger.get_current_instance()
        if not results:
            raise ValueError('FROCMetric: no image was evaluated')
        boxes = [_detections(r) for r in results]
        gts = [r['gt_bboxes'] for r in results]
        if sum(len(g) for g in gts) == 0:
            raise ValueError(f'FROCMetric: none of the {len(results)} evaluated images has a '
                             f'ground-truth lesion (instances missing or all ignore_flag=1?)')

        # 'all' and the breakdown subsets share one ranking and IoU matching
        lesion_subsets = OrderedDict(all=np.ones(sum(len(g) for g in gts), dtype=bool))
        unknown: List[str] = []  # what the breakdowns lacked, for the warning
        if self.breakdowns:
            lesion_subsets.update(self._breakdown_subsets(results, gts, unknown))
        curves = lesion_subset_froc_curves(boxes, gts, lesion_subsets, self.iou_thr,
                                           self.legacy_plus_one, self.out_of_subset_detections)
        rows = [self._row(name, curves[name], int(mask.sum()), len(gts))
                for name, mask in lesion_subsets.items()]
        self._warn_past_the_curve(rows[0].curve)
        metrics: Dict[str, float] = OrderedDict()
        metrics.update(self._row_metrics('', rows[0]))
        if self.compute_map:
            metrics[self.map_key] = coco_ap(boxes, gts, self.iou_thr, self.legacy_plus_one)
        if self.breakdown_metrics:
            for row in rows[1:]:
                metrics.update(self._row_metrics(row.name + '/', row))
        empty = [row.name for row in rows[1:] if row.num_lesions == 0]
        if empty or unknown:
            parts = ([f'{len(empty)} subset(s) without lesions, their sensitivities are n/a: '
                      f"{', '.join(empty)}"] if empty else []) + unknown
            warnings.warn('FROCMetric: ' + '; '.join(parts))

        print_log('\n' + self._format_table(rows, metrics.get(self.map_key)), logger=logger)
        if self.plot_froc:
            self._write_plot(rows, logger)
        if self.outfile_prefix is not None:
            path = f'{self.outfile_prefix}.froc_records.json'
            dump_records_json(results, path)
            print_log(f'FROC records (predictions and ground truth) written to {path}',
                      logger=logger)
        return metrics

    # ----------------------------------------------------------------------------- internals
    def _row(self, name: str, curve: Optional[FROCCurve], num_lesions: int,
             num_images: int) -> _SubsetResult:
        """The report row of one curve (None: no lesion, NaN values)."""
        if curve is None:
            return _SubsetResult(name, 0, num_images, np.full(len(self.fps), np.nan), math.nan,
                                 None)
        sens = curve.sens_at_fp(self.fps, self.protocol)
        sens[~np.isfinite(sens)] = np.nan  # 'mp3d' past a curve ending on a hit: no value
        return _SubsetResult(name, num_lesions, num_images, sens,
                             float(sens[self._mean_mask].mean()), curve)

    def _warn_past_the_curve(self, curve: FROCCurve) -> None:
        """Warn when rates lie past the end of the all-lesion curve (few detections)."""
        end = float(curve.fp_per_image[-1]) if len(curve.fp_per_image) else 0.0
        past = [f for f in self.fps if f > end]
        if past:
            reading = ('the final sensitivity is held' if self.protocol.name == 'deeplesion' else
                       'they are extrapolated as scipy interp1d does (n/a where it gives no '
                       'value); the official MP3D script does not report them')
            warnings.warn(f"FROCMetric: the FROC curve ends at {end:g} FPs per image, so the "
                          f"rates {', '.join(f'{f:g}' for f in past)} lie past it: {reading}")

    def _breakdown_subsets(self, results: List[dict], gts: List[np.ndarray],
                           unknown: List[str]) -> 'OrderedDict[str, np.ndarray]':
        """``(G,)`` lesion masks of the lesion type, size and slice-interval subsets (module
        docstring), lesions in image order; appends to ``unknown`` a note for each input the
        data samples lacked."""
        types = np.concatenate([r['gt_lesion_types'] for r in results])
        diameters = np.concatenate([r['gt_long_diameters_mm'] for r in results])
        if len(types) and (types == -1).all() and np.isnan(diameters).all():
            unknown.append("no lesion has a type or size (they come with 'instances' in the "
                           "metainfo: add it to PackDetInputs' meta_keys)")
        lesion_subsets = OrderedDict(
            (f'type_{name}', types == code) for code, name in LESION_TYPE_NAMES.items()
            if code > 0)  # the 8 known types
        lesion_subsets.update(lesion_size_subsets(diameters))
        intervals = np.array([r['slice_interval'] for r in results], dtype=np.float64)
        if np.isnan(intervals).any():
            unknown.append(f'{int(np.isnan(intervals).sum())} of {len(intervals)} images have '
                           "no slice interval, their lesions are in no interval subset (add "
                           "'slice_interval' to PackDetInputs' meta_keys)")
        lesion_intervals = np.repeat(intervals, [len(g) for g in gts])  # NaN: in no subset
        thr = SLICE_INTERVAL_THR_MM
        lesion_subsets[f'interval_le{thr:g}mm'] = lesion_intervals <= thr
        lesion_subsets[f'interval_gt{thr:g}mm'] = lesion_intervals > thr
        return lesion_subsets

    def _row_metrics(self, key_prefix: str, row: _SubsetResult) -> Dict[str, float]:
        values = OrderedDict((key_prefix + key, float(s))
                             for key, s in zip(self.sens_keys(), row.sensitivity))
        values[key_prefix + self.mean_key] = row.mean
        return values

    def _format_table(self, rows: List[_SubsetResult], ap: Optional[float]) -> str:
        lo, hi = self.mean_fp_range
        header = (['subset', 'lesions', 'images'] + [f'@{f:g}' for f in self.fps] +
                  [f'mean {lo:g}-{hi:g}'])
        data = [header]
        for row in rows:
            values = ['n/a' if math.isnan(s) else f'{100 * s:.2f}' for s in row.sensitivity]
            mean = 'n/a' if math.isnan(row.mean) else f'{100 * row.mean:.2f}'
            data.append([row.name, str(row.num_lesions), str(row.num_images)] + values + [mean])
        table = AsciiTable(data, title=' FROC: sensitivity (%) at FPs per image ')
        for col in range(1, len(header)):
            table.justify_columns[col] = 'right'
        convention = '+1 pixel' if self.legacy_plus_one else 'continuous'
        lines = [table.table,
                 f"protocol '{self.protocol.name}': {self.protocol.description}",
                 f'hit: IoU >= {self.iou_thr:g} ({convention} coordinates); FPs divided by all '
                 f'{rows[0].num_images} images']
        if ap is not None:
            lines.append(f'{self.map_key} (COCO-style AP, one class): {100 * ap:.2f}')
        if self.breakdowns:
            other = ('false positive' if self.out_of_subset_detections == 'false_positive' else
                     'ignored')
            lines.append('type_*/size_*/interval_*: all images and detections, the subset\'s '
                         f'lesions as ground truth (a detection on other lesions only: {other})')
        return '\n'.join(lines)

    def _write_plot(self, rows: List[_SubsetResult], logger: MMLogger) -> None:
        out_dir = self.out_dir
        if out_dir is None:
            log_file = getattr(logger, 'log_file', None)
            out_dir = osp.dirname(log_file) if log_file else None
        if out_dir is None:
            warnings.warn('FROCMetric: plot_froc=True but no out_dir was given and the logger '
                          'has no log file to put the plot next to; the plot is not written')
            return
        curves = OrderedDict((row.name, row.curve) for row in rows
                             if row.curve is not None and not row.name.startswith('type_'))
        path = osp.join(out_dir, 'froc_curve.png')
        plot_froc_curves(curves, path, self.fps,
                         title=f"FROC ('{self.protocol.name}' protocol)",
                         protocol=self.protocol)
        print_log(f'FROC plot written to {path}', logger=logger)


def lesion_size_subsets(sizes_mm: np.ndarray) -> 'OrderedDict[str, np.ndarray]':
    """The size subsets of :data:`SIZE_SUBSETS_MM` as lesion masks.

    Args:
        sizes_mm: ``(G,)`` lesion sizes in mm (NaN: unknown, in no subset).

    Returns:
        subset name -> ``(G,)`` bool mask: ``lo <= d <= hi``, strict at an infinite end
        (``d < 10``, ``d > 30``).
    """
    sizes_mm = np.asarray(sizes_mm, dtype=np.float64)
    masks: 'OrderedDict[str, np.ndarray]' = OrderedDict()
    for name, lo, hi in SIZE_SUBSETS_MM:
        if not math.isfinite(lo):
            masks[name] = sizes_mm < hi
        elif not math.isfinite(hi):
            masks[name] = sizes_mm > lo
        else:
            masks[name] = (sizes_mm >= lo) & (sizes_mm <= hi)
    return masks


def _detections(record: dict) -> np.ndarray:
    """``(n, 5)`` float64 ``[x1, y1, x2, y2, score]`` of one record."""
    return np.concatenate(
        [record['pred_bboxes'].astype(np.float64),
         record['pred_scores'].astype(np.float64)[:, None]], axis=1)

"""Files written for a whole-volume detection: ``detections.json``, ``lesions.csv``, overlays.

``detections.json`` (``format_version`` 1)::

    input:       path, format, dicom_series_uid, num_slices, spacing / origin / direction /
                 size / orientation of the file as stored, reoriented (bool),
                 axial_grid (size, spacing, origin, direction, orientation of the grid the
                 boxes refer to), intensity_stats (min, max, p0.5, p50, p99.5 in HU)
    model:       config, checkpoint, device, model_type, backbone_type, classes,
                 num_slices, slice_interval_mm, hu_window, out_range, test_resize,
                 pixel_spacing_target_mm, batch_size, score_thr
    inference:   resize_rule, model_input_size [w, h], effective_pixel_spacing_mm [x, y],
                 edge_replicated_slices, num_slices_run
    linking:     iou_thr, max_gap, min_slices
    warnings:    list of one-line messages
    timings_s:   read, assemble, pipeline, network, postprocess, link
    conventions: text describing the coordinates below
    detections:  one entry per kept per-slice box: id, slice, box [x1, y1, x2, y2], score,
                 candidate_id (null if unlinked), center_mm [x, y, z],
                 corners_index_original [[i, j, k] of (x1, y1), [i, j, k] of (x2, y2)]
    candidates:  best first: id, slice_range [first, last], best_slice, box, max_score,
                 mean_score, num_slices_detected, long_axis_mm, short_axis_mm, z_extent_mm,
                 center_index [x, y, z], center_mm [x, y, z], center_index_original [i, j, k],
                 detection_ids, duplicate_detection_ids, overlay (file name or null)

``lesions.csv``: one row per candidate, columns :data:`LESION_CSV_COLUMNS`.

Viewer files, on request (:data:`OUTPUT_FORMATS`, ``mp3d-detect-volume --formats``): 3D Slicer
markups (``lesions.mrk.json``, :mod:`.slicer_markups`), a NIfTI label map on the input's grid
with its legend (``lesion_labels.nii.gz``, ``lesion_labels.json``, :mod:`.label_map`), a
DICOM SR measurement report for a DICOM input (``lesions_sr.dcm``, :mod:`.dicom_sr`) and a
self-contained HTML report (``report.html``, :mod:`.html_report`); all mark the same
regions (:mod:`.candidate_regions`).

Overlays (``overlays/candidate_<id:03d>.png``): the best slice of each of the top candidates
in a soft-tissue window (W 400 / L 40), the candidate box and score, a title line and a mm
scale bar, drawn with :func:`mp3d_mmdet.visualization.draw_lesion_overlay`.
"""
import csv
import json
import os
import os.path as osp
import re
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...utils.safe_files import StagedOutputDir, atomic_imwrite, atomic_write
from ...utils.hu_window import SOFT_TISSUE_WINDOW
from ...visualization import draw_lesion_overlay
from .regions import candidate_regions
from .dicom_sr import dicom_sr_problem, write_dicom_sr
from .html_report import write_html_report
from .label_map import write_label_map
from .slicer_markups import write_slicer_markups
from ..inference.detection import VolumeDetectionResult
from ..io.ct_volume import CTVolume

__all__ = ['LESION_CSV_COLUMNS', 'VOLUME_OUTPUT_ENTRIES', 'OUTPUT_FORMATS',
           'default_output_formats', 'parse_output_formats', 'detections_to_dict',
           'write_detections_json', 'write_lesions_csv', 'write_candidate_overlays',
           'write_viewer_files', 'prepare_volume_output_dir', 'write_volume_outputs',
           'writable_output_formats']

#: The viewer formats on request -> the files each writes into the result folder.
OUTPUT_FORMATS: Dict[str, Tuple[str, ...]] = {
    'slicer': ('lesions.mrk.json', ),
    'nifti': ('lesion_labels.nii.gz', 'lesion_labels.json', 'lesion_labels.ctbl',
              'lesion_labels_itksnap.txt'),
    'dicom-sr': ('lesions_sr.dcm', ),
    'html': ('report.html', ),
}
#: What :func:`write_volume_outputs` creates in its folder (beside the hidden manifest of
#: :mod:`~mp3d_mmdet.utils.safe_files`, which is what an ``overwrite`` checks).
VOLUME_OUTPUT_ENTRIES = ('detections.json', 'lesions.csv', 'overlays') + tuple(
    name for names in OUTPUT_FORMATS.values() for name in names)


def default_output_formats(is_dicom: bool) -> Tuple[str, ...]:
    """Every viewer format that applies: all of :data:`OUTPUT_FORMATS`, ``'dicom-sr'`` only
    for a DICOM input."""
    return tuple(name for name in OUTPUT_FORMATS if is_dicom or name != 'dicom-sr')


def parse_output_formats(text: str, is_dicom: bool, option: str = '--formats') -> Tuple[str, ...]:
    """Read a comma-separated list of viewer formats (``'all'``: the default ones, ``'none'``:
    none).

    Args:
        text: e.g. ``'slicer,nifti'``.
        is_dicom: whether the input is a DICOM series (``'dicom-sr'`` needs one).
        option: how the option is named in messages.

    Returns:
        The formats, in :data:`OUTPUT_FORMATS` order, without repeats.

    Raises:
        ValueError: an unknown name, or ``'dicom-sr'`` for a non-DICOM input (one line).
    """
    names = [name.strip().lower() for name in text.split(',') if name.strip()]
    if names == ['all']:
        return default_output_formats(is_dicom)
    if names == ['none']:
        return ()
    unknown = [name for name in names if name not in OUTPUT_FORMATS]
    if unknown or not names:
        raise ValueError(f'{option}: unknown format(s) {unknown or [text]}; choose from '
                         f"{', '.join(OUTPUT_FORMATS)} (comma-separated), 'all' or 'none'")
    if 'dicom-sr' in names and not is_dicom:
        raise ValueError(f'{option}: dicom-sr needs a DICOM series as input (a folder of DICOM '
                         'files); the input is not one')
    return tuple(name for name in OUTPUT_FORMATS if name in names)


def writable_output_formats(volume: CTVolume, formats: Sequence[str],
                            explicit: bool = False) -> Tuple[Tuple[str, ...], Optional[str]]:
    """The formats that can be written for a volume, checked before inference.

    Only ``'dicom-sr'`` can be impossible (:func:`~.dicom_sources.dicom_sr_problem`: e.g. a
    reoriented series without FrameOfReferenceUID).

    Args:
        volume: the input, as read.
        formats: the formats asked for.
        explicit: whether the user named ``'dicom-sr'`` (not only ``'all'``).

    Returns:
        The formats without an impossible ``'dicom-sr'``, and the one-line warning
        saying it is skipped (None when nothing is).

    Raises:
        ValueError: ``explicit`` and the SR cannot be written (the reason, one line).
    """
    if 'dicom-sr' not in formats:
        return tuple(formats), None
    problem = dicom_sr_problem(volume)
    if problem is None:
        return tuple(formats), None
    if explicit:
        raise ValueError(f'dicom-sr cannot be written: {problem}')
    return (tuple(name for name in formats if name != 'dicom-sr'),
            f'no DICOM SR written: {problem}')


LESION_CSV_COLUMNS = (
    'candidate_id', 'first_slice', 'last_slice', 'best_slice', 'num_slices_detected',
    'max_score', 'mean_score', 'box_x1', 'box_y1', 'box_x2', 'box_y2', 'long_axis_mm',
    'short_axis_mm', 'z_extent_mm', 'center_x_mm', 'center_y_mm', 'center_z_mm',
    'center_i_original', 'center_j_original', 'center_k_original', 'overlay')

CONVENTIONS = (
    'box = [x1, y1, x2, y2] in 0-based pixel coordinates (pixel centres at integers, x = column, '
    'y = row) of axial slice `slice` of input.axial_grid (the input reoriented to '
    'input.axial_grid.orientation by axis permutation/flip only; identical to the file grid '
    'when input.reoriented is false). *_mm = physical (x, y, z) in mm, ITK/DICOM world (LPS) '
    'coordinates: origin + direction @ (index * spacing). *_index_original = continuous (i, j, '
    'k) index in the voxel grid of the file as stored. long/short axis = sides of the best-slice '
    'box in mm (box extent, not RECIST); z_extent_mm = (last - first + 1) * slice spacing.')


def _floats(values, digits: int) -> List[float]:
    return [round(float(v), digits) for v in np.asarray(values).reshape(-1)]


def detections_to_dict(result: VolumeDetectionResult,
                       overlays: Optional[Dict[int, str]] = None) -> Dict[str, Any]:
    """The ``detections.json`` content (keys: module docstring) as a JSON-ready dict.

    Args:
        result: the detection result.
        overlays: candidate id -> overlay file (relative path).
    """
    volume = result.volume
    stored = volume.original_geometry
    ids = result.detection_candidate_ids()
    detection_id: Dict[tuple, int] = {}
    detections = []
    for z, (boxes, scores) in enumerate(zip(result.detections.boxes, result.detections.scores)):
        if not len(boxes):
            continue
        boxes64 = np.asarray(boxes, np.float64)
        centres = np.stack([(boxes64[:, 0] + boxes64[:, 2]) / 2,
                            (boxes64[:, 1] + boxes64[:, 3]) / 2, np.full(len(boxes), z)], 1)
        corners = np.stack([np.stack([boxes64[:, 0], boxes64[:, 1], np.full(len(boxes), z)], 1),
                            np.stack([boxes64[:, 2], boxes64[:, 3], np.full(len(boxes), z)], 1)],
                           1)  # (n, 2, 3)
        centres_mm = volume.geometry.index_to_physical(centres)
        corners_original = volume.to_original_index(corners)
        for i in range(len(boxes)):
            detection_id[(z, i)] = len(detections) + 1
            detections.append(dict(
                id=len(detections) + 1, slice=z, box=_floats(boxes[i], 2),
                score=round(float(scores[i]), 4), candidate_id=ids[(z, i)],
                center_mm=_floats(centres_mm[i], 3),
                corners_index_original=[_floats(c, 3) for c in corners_original[i]]))
    candidates = []
    for candidate in result.candidates:
        track = candidate.track
        candidates.append(dict(
            id=candidate.candidate_id,
            slice_range=[candidate.first_slice, candidate.last_slice],
            best_slice=candidate.best_slice, box=_floats(candidate.box, 2),
            max_score=round(candidate.max_score, 4), mean_score=round(candidate.mean_score, 4),
            num_slices_detected=candidate.num_slices_detected,
            long_axis_mm=round(candidate.long_axis_mm, 2),
            short_axis_mm=round(candidate.short_axis_mm, 2),
            z_extent_mm=round(candidate.z_extent_mm, 2),
            center_index=_floats(candidate.center_index, 3),
            center_mm=_floats(candidate.center_mm, 3),
            center_index_original=_floats(candidate.center_index_original, 3),
            detection_ids=[detection_id[key] for key in zip(track.slices, track.detections)],
            duplicate_detection_ids=[detection_id[key] for key in track.duplicates],
            overlay=(overlays or {}).get(candidate.candidate_id)))
    det = result.detections
    return dict(
        format_version=1,
        input=dict(path=volume.source_path, format=volume.source_format,
                   dicom_series_uid=volume.dicom_series_uid, num_slices=volume.num_slices,
                   spacing=list(stored.spacing), origin=list(stored.origin),
                   direction=list(stored.direction), size=list(stored.size),
                   orientation=stored.orientation, reoriented=volume.reoriented,
                   axial_grid=volume.geometry.to_dict(),
                   intensity_stats={k: round(v, 2) for k, v in volume.intensity_stats.items()}),
        model=result.model,
        inference=dict(resize_rule=det.resize_rule, model_input_size=list(det.model_input_size),
                       effective_pixel_spacing_mm=_floats(det.effective_pixel_spacing, 4),
                       edge_replicated_slices=det.edge_replicated_slices,
                       num_slices_run=len(det.slices_run)),
        linking=dict(result.linking),
        warnings=list(result.warnings),
        timings_s={k: round(v, 3) for k, v in result.timings.items()},
        conventions=CONVENTIONS,
        detections=detections,
        candidates=candidates)


_NUMBER_LIST = re.compile(r'\[\s*(-?[0-9][^\[\]{}"]*?)\s*\]')


def write_detections_json(result: VolumeDetectionResult, path: str,
                          overlays: Optional[Dict[int, str]] = None) -> None:
    """Write :func:`detections_to_dict` to ``path`` (indented JSON, number lists on one
    line)."""
    text = json.dumps(detections_to_dict(result, overlays), indent=1)
    text = _NUMBER_LIST.sub(lambda m: '[' + re.sub(r',\s+', ', ', m.group(1)) + ']', text)
    with atomic_write(path) as handle:
        handle.write(text + '\n')


def write_lesions_csv(result: VolumeDetectionResult, path: str,
                      overlays: Optional[Dict[int, str]] = None) -> None:
    """Write one row per candidate (columns :data:`LESION_CSV_COLUMNS`, best first)."""
    with atomic_write(path, newline='') as handle:
        writer = csv.writer(handle, lineterminator='\n')
        writer.writerow(LESION_CSV_COLUMNS)
        for c in result.candidates:
            writer.writerow([
                c.candidate_id, c.first_slice, c.last_slice, c.best_slice,
                c.num_slices_detected, f'{c.max_score:.4f}', f'{c.mean_score:.4f}',
                *(f'{v:.2f}' for v in c.box), f'{c.long_axis_mm:.2f}', f'{c.short_axis_mm:.2f}',
                f'{c.z_extent_mm:.2f}', *(f'{v:.3f}' for v in c.center_mm),
                *(f'{v:.3f}' for v in c.center_index_original),
                (overlays or {}).get(c.candidate_id, '')])


def write_candidate_overlays(result: VolumeDetectionResult, out_dir: str, top_k: int = 10,
                             window: Tuple[float, float] = SOFT_TISSUE_WINDOW) -> Dict[int, str]:
    """Draw the best slice of the ``top_k`` best candidates (module docstring).

    Returns:
        Candidate id -> PNG path relative to ``out_dir``'s parent folder
        (``overlays/candidate_001.png``).
    """
    os.makedirs(out_dir, exist_ok=True)
    volume = result.volume
    sx, sy, _ = volume.spacing
    height, width = volume.slice_shape
    upscale = int(min(8, max(1, round(512 / max(height, width)))))
    written = {}
    for candidate in result.candidates[:top_k]:
        name = f'candidate_{candidate.candidate_id:03d}.png'
        title = (f'#{candidate.candidate_id} slice {candidate.best_slice} '
                 f'[{candidate.first_slice}-{candidate.last_slice}] score '
                 f'{candidate.max_score:.2f} {candidate.long_axis_mm:.0f}x'
                 f'{candidate.short_axis_mm:.0f} mm')
        canvas = draw_lesion_overlay(
            np.asarray(volume.hu[candidate.best_slice], np.float32), None,
            candidate.box[None], np.array([candidate.max_score]), score_thr=0.0,
            window=window, title=title, upscale=upscale, legend=False,
            pixel_spacing_mm=sx)
        atomic_imwrite(osp.join(out_dir, name), canvas)
        written[candidate.candidate_id] = osp.join(osp.basename(osp.normpath(out_dir)), name)
    return written


def _drop_unwritable(result: VolumeDetectionResult, formats: Sequence[str]) -> Tuple[str, ...]:
    """``formats`` without an SR that cannot be written, said once (``result.warnings`` and
    a :class:`UserWarning`)."""
    formats, skipped = writable_output_formats(result.volume, formats)
    if skipped is not None:
        result.warnings.append(skipped)
        warnings.warn(skipped, stacklevel=3)
    return formats


def write_viewer_files(result: VolumeDetectionResult, out_dir: str,
                       formats: Sequence[str], label_score_thr: float = 0.0) -> Dict[str, str]:
    """Write the requested viewer files (:data:`OUTPUT_FORMATS`) into a folder.

    Args:
        result: what to write.
        out_dir: an existing folder.
        formats: names of :data:`OUTPUT_FORMATS`.
        label_score_thr: the NIfTI label map labels the candidates scoring at least
            this.

    Returns:
        Format -> its (first) file, for the formats written: a DICOM SR
        that cannot be written (:func:`writable_output_formats`) is skipped with one
        warning (added to ``result.warnings`` and issued as a :class:`UserWarning`), so that
        a finished inference is never lost to an optional file.
    """
    return _write_viewer_files(result, out_dir, _drop_unwritable(result, formats),
                               label_score_thr)


def _write_viewer_files(result: VolumeDetectionResult, out_dir: str, formats: Sequence[str],
                        label_score_thr: float) -> Dict[str, str]:
    """:func:`write_viewer_files` of formats already checked (:func:`_drop_unwritable`)."""
    regions = candidate_regions(result)
    paths = {name: osp.join(out_dir, OUTPUT_FORMATS[name][0]) for name in formats}
    for name in formats:
        if name == 'slicer':
            write_slicer_markups(result, paths[name], regions)
        elif name == 'nifti':
            legend, slicer_table, itksnap = (osp.join(out_dir, file_name)
                                             for file_name in OUTPUT_FORMATS[name][1:])
            write_label_map(result, paths[name], legend, label_score_thr,
                            [r for r in regions if r.score >= label_score_thr],
                            slicer_table, itksnap)
        elif name == 'dicom-sr':
            write_dicom_sr(result, paths[name], regions)
        elif name == 'html':
            write_html_report(result, paths[name], regions)
        else:
            raise ValueError(f'unknown output format {name!r}; choose from '
                             f"{', '.join(OUTPUT_FORMATS)}")
    return paths


def write_volume_outputs(result: VolumeDetectionResult, out_dir: Union[str, StagedOutputDir],
                         top_k_overlays: int = 10, overwrite: bool = False,
                         formats: Sequence[str] = (),
                         label_score_thr: float = 0.0) -> Dict[str, str]:
    """Write ``detections.json``, ``lesions.csv``, ``overlays/`` and the requested viewer files
    as one result folder.

    The files are written into a staging folder and moved into place together
    (:class:`~mp3d_mmdet.utils.safe_files.StagedOutputDir`): the folder then holds exactly
    this result, and an error while writing (e.g. a full disk) leaves it as it was.

    Args:
        result: what to write.
        out_dir: the result folder, or a staged folder created
            before the run (:func:`prepare_volume_output_dir`, so that an unusable folder is
            refused before inference).
        top_k_overlays: overlays of this many best candidates.
        overwrite: with a folder path, replace an earlier run's results there.
        formats: viewer files to write too (:data:`OUTPUT_FORMATS`;
            :func:`parse_output_formats` checks a user's list).
        label_score_thr: see :func:`write_viewer_files`.

    Returns:
        ``json``, ``csv``, ``overlays`` and each format written -> paths
        (an SR that cannot be written is skipped: :func:`write_viewer_files`).

    Raises:
        ValueError: ``out_dir`` is a file, or a non-empty folder without ``overwrite``, or
            holds files this writer did not write, or the input volume.
    """
    source = result.volume.source_path
    staged = out_dir if isinstance(out_dir, StagedOutputDir) else prepare_volume_output_dir(
        out_dir, overwrite, inputs=[source] if source else ())
    formats = _drop_unwritable(result, formats)  # before detections.json, which lists warnings
    with staged:
        overlays = write_candidate_overlays(result, osp.join(staged.path, 'overlays'),
                                            top_k_overlays)
        write_detections_json(result, osp.join(staged.path, 'detections.json'), overlays)
        write_lesions_csv(result, osp.join(staged.path, 'lesions.csv'), overlays)
        viewer = _write_viewer_files(result, staged.path, formats, label_score_thr)
    destination = staged.commit()
    paths = dict(json=osp.join(destination, 'detections.json'),
                 csv=osp.join(destination, 'lesions.csv'),
                 overlays=osp.join(destination, 'overlays'))
    paths.update({name: osp.join(destination, osp.basename(path))
                  for name, path in viewer.items()})
    return paths


def prepare_volume_output_dir(out_dir: str, overwrite: bool = False,
                              option: str = 'output folder',
                              inputs: Sequence[str] = ()) -> StagedOutputDir:
    """Check ``out_dir`` for :func:`write_volume_outputs` and create its staging folder.

    Args:
        out_dir: the result folder (created if missing).
        overwrite: accept a folder holding an earlier run's results (replaced when
            the new ones are complete); without it the folder must be empty or missing.
        option: how the folder is named in error messages (e.g. ``'--out'``).
        inputs: the run's input files or folders (never replaced).

    Raises:
        ValueError: ``out_dir`` is a file, a non-empty folder without ``overwrite``, holds a
            file an earlier run did not write (or that changed since: the ownership rule of
            :func:`~mp3d_mmdet.utils.safe_files.check_replaceable`), or holds an input.
        OSError: the folder cannot be created or written.
    """
    return StagedOutputDir(out_dir, overwrite, inputs, option, tool='mp3d-detect-volume')

"""A label map of the lesion candidates on the input's own voxel grid, with a JSON legend.

The map has the input file's exact grid -- size, spacing, origin and direction of the file as
stored (:attr:`CTVolume.original_geometry`), not the axial grid the detector ran on -- so it
overlays the scan in any viewer (ITK-SNAP, 3D Slicer, FSLeyes ...). Voxel values: 0 for
background, ``k`` for the voxels whose centres lie inside candidate ``k``'s 3D box
(:mod:`.candidate_regions`: the box edges in-plane, whole slices along z); where boxes
overlap, the better-scored candidate (lower id) wins. Written as unsigned 16-bit integers.

The legend (``*.json`` beside the map) names the map (relative to the legend) and lists, per
label, the candidate id, scores, its slices on the detector's axial grid (``axial_slices``,
``axial_best_slice``: the axes of a reoriented input differ from the map's), box centre
(LPS) and size in mm, its colour, its ``voxel_count`` in the map and ``hidden_by_overlap``
(true when a better-scored overlapping box covers all its voxels, so the label is absent
from the map; ``hidden_labels`` lists them), and the score threshold applied.

Colour tables name the labels where the viewers look: a 3D Slicer colour table
(``.ctbl``: ``index name R G B A`` lines; load it with the map and pick it as the map's
colour node) and an ITK-SNAP label description file (``.txt``, *Segmentation > Import
Label Descriptions*), both with label 0 ``background`` and ``lesion <id>`` per candidate in
the colours of :data:`LABEL_COLORS` (cycled; Slicer names cannot hold spaces: ``lesion_<id>``).
"""
import json
import os.path as osp
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from ...utils.safe_files import atomic_sitk_write, atomic_write
from .regions import CandidateRegion, candidate_regions
from ..io.ct_volume import CTVolume
from ..inference.detection import VolumeDetectionResult

__all__ = ['candidate_label_array', 'label_map_image', 'write_label_map', 'LABEL_COLORS',
           'label_color', 'slicer_color_table', 'itksnap_label_descriptions']

#: RGB colours of the labels, cycled by candidate id (label 1 gets the first).
LABEL_COLORS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
                (250, 190, 212), (0, 128, 128), (170, 110, 40))


def label_color(label: int) -> tuple:
    """RGB of a label (:data:`LABEL_COLORS`, cycled; label 0 black)."""
    return (0, 0, 0) if label == 0 else LABEL_COLORS[(label - 1) % len(LABEL_COLORS)]


def slicer_color_table(labels: List[int]) -> str:
    """A 3D Slicer colour table (``.ctbl``) naming label 0 and ``lesion <id>`` labels."""
    lines = ['# mp3d_mmdet lesion candidate labels (3D Slicer color table)',
             f'# {len(labels) + 1} values', '0 background 0 0 0 0']
    lines += [f'{k} lesion_{k} {" ".join(str(c) for c in label_color(k))} 255' for k in labels]
    return '\n'.join(lines) + '\n'


def itksnap_label_descriptions(labels: List[int]) -> str:
    """An ITK-SNAP label description file naming label 0 and ``lesion <id>`` labels."""
    lines = ['################################################',
             '# ITK-SnAP Label Description File',
             '# Columns: IDX -R- -G- -B- -A-- VIS MSH LABEL',
             '################################################',
             '    0     0    0    0        0  0  0    "Clear Label"']
    for k in labels:
        r, g, b = label_color(k)
        lines.append(f'{k:5d} {r:5d}{g:5d}{b:5d}        1  1  1    "lesion {k}"')
    return '\n'.join(lines) + '\n'


def candidate_label_array(volume: CTVolume, regions: List[CandidateRegion]) -> np.ndarray:
    """The label array on the volume's axial grid.

    Args:
        volume: the volume the regions were detected in.
        regions: best first.

    Returns:
        Uint16 ``(Z, Y, X)`` like ``volume.hu``: ``candidate_id`` inside each
        region (voxel centres ``x1 <= x <= x2``, ``y1 <= y <= y2``, slices ``first..last``),
        0 elsewhere; earlier regions drawn over later ones.
    """
    labels = np.zeros(volume.hu.shape, dtype=np.uint16)
    depth, height, width = labels.shape
    for region in reversed(regions):
        if not 0 < region.candidate_id <= np.iinfo(np.uint16).max:
            raise ValueError(f'candidate id {region.candidate_id} does not fit a uint16 label')
        x1, y1, _, x2, y2, _ = region.box_index
        xs = slice(max(0, int(np.ceil(x1))), min(width, int(np.floor(x2)) + 1))
        ys = slice(max(0, int(np.ceil(y1))), min(height, int(np.floor(y2)) + 1))
        zs = slice(max(0, region.first_slice), min(depth, region.last_slice + 1))
        labels[zs, ys, xs] = region.candidate_id
    return labels


def label_map_image(volume: CTVolume, regions: List[CandidateRegion],
                    labels: Optional[np.ndarray] = None) -> sitk.Image:
    """The label map as a SimpleITK image on the input file's grid.

    The axial grid is the file's grid with its axes permuted and flipped (no interpolation),
    so nearest-neighbour resampling onto the file's grid moves every label to the voxel it
    came from.

    Args:
        volume: the volume the regions were detected in.
        regions: best first.
        labels: :func:`candidate_label_array` of them, if already computed.

    Returns:
        Uint16, size / spacing / origin / direction of
        ``volume.original_geometry``.
    """
    if labels is None:
        labels = candidate_label_array(volume, regions)
    axial = sitk.GetImageFromArray(labels)
    axial.SetSpacing(volume.geometry.spacing)
    axial.SetOrigin(volume.geometry.origin)
    axial.SetDirection(volume.geometry.direction)
    original = volume.original_geometry
    reference = sitk.Image([int(s) for s in original.size], sitk.sitkUInt16)
    reference.SetSpacing(original.spacing)
    reference.SetOrigin(original.origin)
    reference.SetDirection(original.direction)
    return sitk.Resample(axial, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt16)


def write_label_map(result: VolumeDetectionResult, path: str, legend_path: str,
                    score_thr: float = 0.0,
                    regions: Optional[List[CandidateRegion]] = None,
                    slicer_table_path: Optional[str] = None,
                    itksnap_path: Optional[str] = None) -> None:
    """Write the candidates' label map (NIfTI, on the input's grid) and its JSON legend.

    Args:
        result: the detection result.
        path: the map, ``*.nii.gz`` or ``*.nii``; written whole or not at all.
        legend_path: the legend, ``*.json``.
        score_thr: only candidates with a highest score >= this get a label.
        regions: default: :func:`candidate_regions` of the
            result with ``score_thr``.
        slicer_table_path: where to write the 3D Slicer colour table (``*.ctbl``), if wanted.
        itksnap_path: where to write the ITK-SNAP label descriptions (``*.txt``), if wanted.
    """
    if not path.lower().endswith(('.nii', '.nii.gz')):
        raise ValueError(f'{path}: a NIfTI label map must end in .nii or .nii.gz')
    regions = candidate_regions(result, score_thr) if regions is None else regions
    array = candidate_label_array(result.volume, regions)
    counts = np.bincount(array.reshape(-1), minlength=max([r.candidate_id for r in regions],
                                                          default=0) + 1)
    atomic_sitk_write(label_map_image(result.volume, regions, array), path)
    ids = [r.candidate_id for r in regions]
    tables = {}
    for key, table_path, text in (('slicer_color_table', slicer_table_path, slicer_color_table),
                                  ('itksnap_label_descriptions', itksnap_path,
                                   itksnap_label_descriptions)):
        if table_path is not None:
            with atomic_write(table_path) as handle:
                handle.write(text(ids))
            tables[key] = osp.relpath(osp.abspath(table_path),
                                      osp.dirname(osp.abspath(legend_path)))
    legend = dict(
        label_map=osp.relpath(osp.abspath(path), osp.dirname(osp.abspath(legend_path))),
        grid='the input file as stored: size, spacing, origin and direction of '
        'input.original_geometry',
        background=0,
        score_thr=float(score_thr),
        **tables,
        hidden_labels=[k for k in ids if counts[k] == 0],
        labels=[dict(label=r.candidate_id, candidate_id=r.candidate_id, score=r.score,
                     mean_score=r.mean_score,
                     axial_slices=[r.first_slice, r.last_slice],
                     axial_best_slice=r.best_slice,
                     center_lps_mm=[round(float(v), 3) for v in r.center_lps_mm],
                     size_mm=[round(float(v), 3) for v in r.size_mm],
                     color_rgb=list(label_color(r.candidate_id)),
                     voxel_count=int(counts[r.candidate_id]),
                     hidden_by_overlap=bool(counts[r.candidate_id] == 0)) for r in regions])
    with atomic_write(legend_path) as handle:
        json.dump(legend, handle, indent=2)

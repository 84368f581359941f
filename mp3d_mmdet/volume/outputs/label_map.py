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
(LPS) and size in mm, and the score threshold applied.
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

__all__ = ['candidate_label_array', 'label_map_image', 'write_label_map']


def candidate_label_array(volume: CTVolume, regions: List[CandidateRegion]) -> np.ndarray:
    """The label array on the volume's axial grid.

    Args:
        volume (CTVolume): the volume the regions were detected in.
        regions (list[CandidateRegion]): best first.

    Returns:
        np.ndarray: uint16 ``(Z, Y, X)`` like ``volume.hu``: ``candidate_id`` inside each
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


def label_map_image(volume: CTVolume, regions: List[CandidateRegion]) -> sitk.Image:
    """The label map as a SimpleITK image on the input file's grid.

    The axial grid is the file's grid with its axes permuted and flipped (no interpolation),
    so nearest-neighbour resampling onto the file's grid moves every label to the voxel it
    came from.

    Returns:
        SimpleITK.Image: uint16, size / spacing / origin / direction of
        ``volume.original_geometry``.
    """
    axial = sitk.GetImageFromArray(candidate_label_array(volume, regions))
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
                    regions: Optional[List[CandidateRegion]] = None) -> None:
    """Write the candidates' label map (NIfTI, on the input's grid) and its JSON legend.

    Args:
        result (VolumeDetectionResult): the detection result.
        path (str): the map, ``*.nii.gz`` or ``*.nii``; written whole or not at all.
        legend_path (str): the legend, ``*.json``.
        score_thr (float): only candidates with a highest score >= this get a label.
        regions (list[CandidateRegion] | None): default: :func:`candidate_regions` of the
            result with ``score_thr``.
    """
    if not path.lower().endswith(('.nii', '.nii.gz')):
        raise ValueError(f'{path}: a NIfTI label map must end in .nii or .nii.gz')
    regions = candidate_regions(result, score_thr) if regions is None else regions
    atomic_sitk_write(label_map_image(result.volume, regions), path)
    legend = dict(
        label_map=osp.relpath(osp.abspath(path), osp.dirname(osp.abspath(legend_path))),
        grid='the input file as stored: size, spacing, origin and direction of '
        'input.original_geometry',
        background=0,
        score_thr=float(score_thr),
        labels=[dict(label=r.candidate_id, candidate_id=r.candidate_id, score=r.score,
                     mean_score=r.mean_score,
                     axial_slices=[r.first_slice, r.last_slice],
                     axial_best_slice=r.best_slice,
                     center_lps_mm=[round(float(v), 3) for v in r.center_lps_mm],
                     size_mm=[round(float(v), 3) for v in r.size_mm]) for r in regions])
    with atomic_write(legend_path) as handle:
        json.dump(legend, handle, indent=2)

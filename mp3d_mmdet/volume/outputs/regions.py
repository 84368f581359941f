"""Where each 3D lesion candidate lies: its box in voxel indices and in physical space.

The one place that turns a :class:`~mp3d_mmdet.volume.LesionCandidate` into a 3D region, shared
by every file written for viewers (3D Slicer markups, NIfTI label maps, DICOM SR, the HTML
report) and by the batch results file, so that they all mark the same voxels.

Conventions (those of ``detections.json``): axial-grid indices ``(x, y, z)`` with voxel
centres at integers; a per-slice box ``[x1, y1, x2, y2]`` is continuous (its edges may fall
between voxel centres). A candidate's 3D box is the union of the in-plane extents of its
linked boxes, and along z it covers its slices as slabs: from ``first_slice - 0.5`` to
``last_slice + 0.5``. Physical points are ITK/DICOM world (LPS) millimetres,
``origin + direction @ (index * spacing)`` (:meth:`VolumeGeometry.index_to_physical`).
"""
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from ..inference.linking import LesionCandidate
from ..inference.detection import VolumeDetectionResult

__all__ = ['CandidateRegion', 'candidate_box_3d', 'candidate_regions']

#: Which corners take the upper bound per axis, corner ``i`` = bits ``(x, y, z)`` of ``i``.
_CORNER_BITS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)


@dataclass(frozen=True)
class CandidateRegion:
    """A lesion candidate's 3D region (conventions: module docstring).

    Attributes:
        candidate_id: 1-based rank by score.
        score, mean_score: the candidate's highest and mean box score.
        first_slice, last_slice, best_slice: axial-grid slice indices.
        box_index: float64 ``(6,)`` ``[x1, y1, z1, x2, y2, z2]`` continuous
            axial-grid indices, ``z1 = first_slice - 0.5``, ``z2 = last_slice + 0.5``.
        corners_lps_mm: float64 ``(8, 3)`` physical corners, index order
            ``(x, y, z)`` bits ``000, 100, 010, 110, 001, 101, 011, 111`` (x fastest).
        center_lps_mm: float64 ``(3,)`` physical centre of the box.
        axes_lps: float64 ``(3, 3)``; column ``i`` is the unit vector of the
            box's axis ``i`` (the grid's x, y, z) in physical space.
        size_mm: float64 ``(3,)`` extent of the box along its axes.
        long_axis_mm, short_axis_mm: sides of the best-slice box in mm.
        slice_boxes: slice -> float64 ``(4,)`` ``[x1, y1, x2, y2]``:
            the linked box on that slice, or, on a slice the linking bridged, the in-plane
            extent of the 3D box.
    """
    candidate_id: int
    score: float
    mean_score: float
    first_slice: int
    last_slice: int
    best_slice: int
    box_index: np.ndarray
    corners_lps_mm: np.ndarray
    center_lps_mm: np.ndarray
    axes_lps: np.ndarray
    size_mm: np.ndarray
    long_axis_mm: float
    short_axis_mm: float
    slice_boxes: Dict[int, np.ndarray]


def candidate_box_3d(candidate: LesionCandidate) -> np.ndarray:
    """The candidate's 3D box on its slices: float64 ``(6,)``
    ``[x1, y1, first_slice, x2, y2, last_slice]``, ``x``/``y`` the union of its linked boxes'
    in-plane extents (its best-slice box if it has none)."""
    boxes = np.asarray(candidate.track.boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        boxes = np.asarray(candidate.box, np.float64).reshape(1, 4)
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), float(candidate.first_slice),
                     boxes[:, 2].max(), boxes[:, 3].max(), float(candidate.last_slice)])


def candidate_regions(result: VolumeDetectionResult,
                      score_thr: float = 0.0) -> List[CandidateRegion]:
    """The 3D regions of a detection result's candidates.

    Args:
        result: the detection result.
        score_thr: keep the candidates whose highest score is >= this.

    Returns:
        Best first (the candidates' order).
    """
    geometry = result.volume.geometry
    spacing = np.asarray(geometry.spacing, dtype=np.float64)
    axes = geometry.direction_matrix
    regions = []
    for candidate in result.candidates:
        if candidate.max_score < score_thr:
            continue
        x1, y1, first, x2, y2, last = candidate_box_3d(candidate)
        box = np.array([x1, y1, first - 0.5, x2, y2, last + 0.5])
        corners_index = np.where(_CORNER_BITS, box[3:], box[:3])
        corners = geometry.index_to_physical(corners_index)
        linked = {int(z): np.asarray(b, np.float64).copy()
                  for z, b in zip(candidate.track.slices, candidate.track.boxes)}
        slice_boxes = {z: linked.get(z, np.array([x1, y1, x2, y2]))
                       for z in range(candidate.first_slice, candidate.last_slice + 1)}
        regions.append(CandidateRegion(
            candidate_id=int(candidate.candidate_id), score=float(candidate.max_score),
            mean_score=float(candidate.mean_score), first_slice=int(candidate.first_slice),
            last_slice=int(candidate.last_slice), best_slice=int(candidate.best_slice),
            box_index=box, corners_lps_mm=corners, center_lps_mm=corners.mean(axis=0),
            axes_lps=axes.copy(), size_mm=(box[3:] - box[:3]) * spacing,
            long_axis_mm=float(candidate.long_axis_mm),
            short_axis_mm=float(candidate.short_axis_mm), slice_boxes=slice_boxes))
    return regions

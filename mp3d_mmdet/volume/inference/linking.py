"""Linking per-slice lesion boxes into 3D lesion candidates, and measuring the candidates.

**Linking rule** (:func:`link_slice_detections`). Slices are visited in increasing z. A
*track* (a candidate being built) holds at most one box per slice (its *representative* box
there) and stays open while the number of slices since its last box is at most ``max_gap``
(``max_gap=0``: boxes must be on strictly adjacent slices; ``max_gap=1``: one slice without
a matching box may be bridged). On each slice the boxes are taken by decreasing score, and
each box

1. joins the open track whose last box overlaps it most, if that IoU is >= ``iou_thr`` and
   the track has no box on this slice yet;
2. otherwise, if it overlaps (IoU >= ``iou_thr``) a box already placed on this slice, it is a
   *duplicate* of that box's track (attached to the candidate, not its representative -- a
   second detection of the same lesion that non-maximum suppression let through);
3. otherwise it starts a new track.

Then tracks that run in parallel over the same lesion are merged: two tracks whose
representative boxes overlap (IoU >= ``iou_thr``) on a slice they share are one lesion (rule
2 applied across tracks; the greedy pass can leave such pairs, because a box prefers to
continue its own track). Per slice the higher-scoring box stays the representative, the other
becomes a duplicate; merging repeats until no shared slice has such an overlap.

IoU is the continuous one, ``inter / (area_a + area_b - inter)`` with ``area = (x2 - x1) *
(y2 - y1)``. Tracks with fewer than ``min_slices`` representative boxes are discarded (their
boxes are reported as unlinked). Deterministic: boxes of equal score are taken in list order.

**Measurements** (:func:`measure_lesion_candidates`), all from the representative boxes:

* ``best_slice``: the slice of the highest-scoring box (ties: lowest z); ``box``: that box;
  ``max_score``, ``mean_score`` over the representative boxes.
* ``long_axis_mm`` / ``short_axis_mm``: the larger / smaller side of the best-slice box in mm,
  ``(x2 - x1) * sx`` and ``(y2 - y1) * sy`` -- the box extent, not a RECIST measurement
  (a box also includes the detector's padding around the lesion; DeepLesion boxes are padded
  by a few pixels, so this overestimates the lesion diameters and an oblique lesion's long
  axis is underestimated by its axis-aligned box).
* ``z_extent_mm``: ``(last_slice - first_slice + 1) * sz`` (each slice stands for ``sz`` mm).
* ``center_index``: continuous ``(x, y, z)`` index of the best-slice box centre,
  ``((x1 + x2) / 2, (y1 + y2) / 2, best_slice)``; ``center_mm``: that point in physical
  coordinates (origin and direction, :meth:`VolumeGeometry.index_to_physical`);
  ``center_index_original``: the same point in the file's own voxel grid.

Box coordinates are ``[x1, y1, x2, y2]`` pixel coordinates of the axial slice (0-based, pixel
centres at integers; ``x`` = column, ``y`` = row), as the detector returns them.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...structures import box_iou
from ..io.ct_volume import VolumeGeometry

__all__ = ['LinkedTrack', 'LesionCandidate', 'link_slice_detections',
           'measure_lesion_candidates']


@dataclass(eq=False)
class LinkedTrack:
    """Boxes linked across slices (see the module docstring).

    Attributes:
        slices: slices of the representative boxes, increasing.
        detections: index of each representative box in its slice's box list.
        boxes: the representative ``[x1, y1, x2, y2]`` boxes.
        scores: their scores.
        duplicates: ``(slice, box index)`` of duplicate boxes.
    """
    slices: List[int] = field(default_factory=list)
    detections: List[int] = field(default_factory=list)
    boxes: List[np.ndarray] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)
    duplicates: List[Tuple[int, int]] = field(default_factory=list)

    def add(self, z: int, index: int, box: np.ndarray, score: float) -> None:
        """Append the representative box of slice ``z``."""
        self.slices.append(z)
        self.detections.append(index)
        self.boxes.append(np.asarray(box, np.float64))
        self.scores.append(float(score))


def _check_inputs(slice_boxes: Sequence[np.ndarray],
                  slice_scores: Sequence[np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray]]:
    if len(slice_boxes) != len(slice_scores):
        raise ValueError(f'slice_boxes has {len(slice_boxes)} slices, slice_scores '
                         f'{len(slice_scores)}')
    checked = []
    for z, (boxes, scores) in enumerate(zip(slice_boxes, slice_scores)):
        boxes = np.asarray(boxes, np.float64)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f'slice {z}: boxes must be (n, 4), got shape {boxes.shape}')
        if len(scores) != len(boxes):
            raise ValueError(f'slice {z}: {len(boxes)} boxes but {len(scores)} scores')
        checked.append((boxes, scores))
    return checked


def link_slice_detections(slice_boxes: Sequence[np.ndarray],
                          slice_scores: Sequence[np.ndarray],
                          iou_thr: float = 0.3,
                          max_gap: int = 1,
                          min_slices: int = 1) -> List[LinkedTrack]:
    """Link the boxes of consecutive axial slices into 3D tracks (rule: module docstring).

    Args:
        slice_boxes: per slice ``z`` (list index), ``(n_z, 4)`` boxes.
        slice_scores: per slice, ``(n_z,)`` scores.
        iou_thr: smallest IoU that links two boxes (0 < iou_thr <= 1).
        max_gap: most consecutive slices without a box inside one track (>= 0).
        min_slices: fewest representative boxes a kept track has (>= 1).

    Returns:
        Tracks in order of creation (first slice, then score).
    """
    if not 0.0 < iou_thr <= 1.0:
        raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
    if int(max_gap) != max_gap or max_gap < 0:
        raise ValueError(f'max_gap must be an integer >= 0, got {max_gap}')
    if int(min_slices) != min_slices or min_slices < 1:
        raise ValueError(f'min_slices must be an integer >= 1, got {min_slices}')
    tracks: List[LinkedTrack] = []
    open_tracks: List[LinkedTrack] = []
    for z, (boxes, scores) in enumerate(_check_inputs(slice_boxes, slice_scores)):
        open_tracks = [t for t in open_tracks if z - t.slices[-1] - 1 <= max_gap]
        last_boxes = np.array([t.boxes[-1] for t in open_tracks]).reshape(-1, 4)
        # the open tracks a box may still join: IoU >= iou_thr, -1 otherwise or once claimed
        to_open = box_iou(boxes, last_boxes, legacy_plus_one=False)
        to_open[to_open < iou_thr] = -1.0
        # boxes of this slice against each other
        within = box_iou(boxes, boxes, legacy_plus_one=False)
        placed: List[Tuple[int, LinkedTrack]] = []  # (box index, track) on this slice
        for i in np.argsort(-scores, kind='stable').tolist():
            if to_open.shape[1]:
                j = int(np.argmax(to_open[i]))  # best IoU; the first track on a tie
                if to_open[i, j] >= iou_thr:
                    to_open[:, j] = -1.0  # claimed
                    open_tracks[j].add(z, i, boxes[i], scores[i])
                    placed.append((i, open_tracks[j]))
                    continue
            if placed:
                same_slice = within[i, [p[0] for p in placed]]
                k = int(np.argmax(same_slice))
                if same_slice[k] >= iou_thr:
                    placed[k][1].duplicates.append((z, i))
                    continue
            track = LinkedTrack()
            track.add(z, i, boxes[i], scores[i])
            tracks.append(track)
            placed.append((i, track))
        open_ids = {id(t) for t in open_tracks}
        open_tracks = open_tracks + [p[1] for p in placed if id(p[1]) not in open_ids]
    tracks = _merge_parallel_tracks(tracks, iou_thr)
    return [t for t in tracks if len(t.slices) >= min_slices]


def _merge_parallel_tracks(tracks: List[LinkedTrack], iou_thr: float) -> List[LinkedTrack]:
    """Merge tracks whose boxes overlap (IoU >= ``iou_thr``) on a shared slice (module doc)."""
    while True:
        parent = list(range(len(tracks)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        on_slice: Dict[int, List[Tuple[int, np.ndarray]]] = {}
        for t, track in enumerate(tracks):
            for z, box in zip(track.slices, track.boxes):
                on_slice.setdefault(z, []).append((t, box))
        merged = False
        for z in sorted(on_slice):
            members = on_slice[z]
            if len(members) < 2:
                continue
            member_boxes = np.array([b for _, b in members])
            iou = box_iou(member_boxes, member_boxes, legacy_plus_one=False)
            for a, b in zip(*np.nonzero(np.triu(iou >= iou_thr, k=1))):
                ra, rb = root(members[a][0]), root(members[b][0])
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                    merged = True
        if not merged:
            return tracks
        groups: Dict[int, List[LinkedTrack]] = {}
        for t, track in enumerate(tracks):
            groups.setdefault(root(t), []).append(track)
        tracks = [_combine(groups[r]) for r in sorted(groups)]


def _combine(group: List[LinkedTrack]) -> LinkedTrack:
    """One track from several: per slice the best box represents, the others are duplicates."""
    if len(group) == 1:
        return group[0]
    best: Dict[int, Tuple[float, int, np.ndarray]] = {}
    duplicates = [d for track in group for d in track.duplicates]
    for track in group:
        for z, index, box, score in zip(track.slices, track.detections, track.boxes,
                                        track.scores):
            if z not in best or score > best[z][0]:
                if z in best:
                    duplicates.append((z, best[z][1]))
                best[z] = (score, index, box)
            else:
                duplicates.append((z, index))
    combined = LinkedTrack(duplicates=sorted(duplicates))
    for z in sorted(best):
        score, index, box = best[z]
        combined.add(z, index, box, score)
    return combined


@dataclass(eq=False)
class LesionCandidate:
    """A 3D lesion candidate with its measurements (definitions: module docstring).

    Attributes:
        candidate_id: 1-based rank by ``max_score`` (ties: earlier track first).
        first_slice, last_slice, best_slice: axial slice indices.
        box: float64 ``[x1, y1, x2, y2]`` on ``best_slice``.
        max_score, mean_score: over the representative boxes.
        num_slices_detected: slices with a representative box.
        long_axis_mm, short_axis_mm, z_extent_mm: sizes in mm.
        center_index: float64 ``(3,)`` continuous ``(x, y, z)`` index.
        center_mm: float64 ``(3,)`` physical ``(x, y, z)`` mm.
        center_index_original: float64 ``(3,)`` index in the file's voxel grid.
        track: the linked boxes.
    """
    candidate_id: int
    first_slice: int
    last_slice: int
    best_slice: int
    box: np.ndarray
    max_score: float
    mean_score: float
    num_slices_detected: int
    long_axis_mm: float
    short_axis_mm: float
    z_extent_mm: float
    center_index: np.ndarray
    center_mm: np.ndarray
    center_index_original: np.ndarray
    track: LinkedTrack


def measure_lesion_candidates(tracks: Sequence[LinkedTrack], geometry: VolumeGeometry,
                              original_geometry: Optional[VolumeGeometry] = None
                              ) -> List[LesionCandidate]:
    """Measure linked tracks on the volume's grid and rank them by max score.

    Args:
        tracks: from :func:`link_slice_detections`.
        geometry: grid the boxes are on (the axial grid).
        original_geometry: the file's own grid, for
            ``center_index_original``; None = same as ``geometry``.

    Returns:
        Sorted by decreasing ``max_score``, ids 1, 2, ...
    """
    original_geometry = original_geometry or geometry
    sx, sy, sz = geometry.spacing
    measured = []
    for order, track in enumerate(tracks):
        scores = np.asarray(track.scores)
        best = int(np.argmax(scores))  # first maximum: lowest z
        box = track.boxes[best]
        width_mm, height_mm = (box[2] - box[0]) * sx, (box[3] - box[1]) * sy
        center_index = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2,
                                 float(track.slices[best])])
        center_mm = geometry.index_to_physical(center_index)
        measured.append((-float(scores[best]), order, LesionCandidate(
            candidate_id=0, first_slice=track.slices[0], last_slice=track.slices[-1],
            best_slice=track.slices[best], box=box.copy(), max_score=float(scores[best]),
            mean_score=float(scores.mean()), num_slices_detected=len(track.slices),
            long_axis_mm=float(max(width_mm, height_mm)),
            short_axis_mm=float(min(width_mm, height_mm)),
            z_extent_mm=float((track.slices[-1] - track.slices[0] + 1) * sz),
            center_index=center_index, center_mm=center_mm,
            center_index_original=original_geometry.physical_to_index(center_mm),
            track=track)))
    measured.sort(key=lambda item: item[:2])
    candidates = [item[2] for item in measured]
    for rank, candidate in enumerate(candidates, start=1):
        candidate.candidate_id = rank
    return candidates

"""Linking known per-slice boxes into 3D candidates, and the candidates' measurements."""
import numpy as np
import pytest
import SimpleITK as sitk

from mp3d_mmdet.volume import VolumeGeometry, link_slice_detections, measure_lesion_candidates

A = [10.0, 10.0, 30.0, 20.0]  # lesion A
A2 = [11.0, 10.0, 31.0, 21.0]  # A shifted by a pixel: IoU with A = 0.7949
B = [50.0, 50.0, 60.0, 60.0]  # lesion B, far from A


def _slices(per_slice, depth):
    """{z: [(box, score), ...]} -> the (boxes, scores) lists of a depth-slice volume."""
    boxes = [np.zeros((0, 4)) for _ in range(depth)]
    scores = [np.zeros(0) for _ in range(depth)]
    for z, items in per_slice.items():
        boxes[z] = np.array([b for b, _ in items], np.float32)
        scores[z] = np.array([s for _, s in items], np.float32)
    return boxes, scores


def test_two_lesions_and_a_gap():
    # A on slices 2-6 with slice 4 missing (a 1-slice gap), B on slices 5-7, a lone box on 12.
    boxes, scores = _slices({
        2: [(A, 0.6)], 3: [(A2, 0.9), (B, 0.2)], 5: [(A, 0.7), (B, 0.8)],
        6: [(A2, 0.5), (B, 0.9)],
        7: [(B, 0.4)], 12: [(A, 0.3)]}, depth=14)
    tracks = link_slice_detections(boxes, scores, iou_thr=0.5, max_gap=1)
    assert [t.slices for t in tracks] == [[2, 3, 5, 6], [3, 5, 6, 7], [12]]
    assert tracks[0].scores == pytest.approx([0.6, 0.9, 0.7, 0.5])
    assert tracks[1].detections == [1, 1, 1, 0]  # index of the box in its slice's list

    # no gap allowed: A splits at the missing slice 4; B (3, then 5) splits too
    tracks = link_slice_detections(boxes, scores, iou_thr=0.5, max_gap=0)
    assert sorted(t.slices for t in tracks) == [[2, 3], [3], [5, 6], [5, 6, 7], [12]]
    # min_slices drops the short tracks
    tracks = link_slice_detections(boxes, scores, iou_thr=0.5, max_gap=0, min_slices=3)
    assert [t.slices for t in tracks] == [[5, 6, 7]]


def test_gap_of_two_needs_max_gap_two():
    boxes, scores = _slices({0: [(A, 0.9)], 3: [(A, 0.8)]}, depth=5)
    assert [t.slices for t in link_slice_detections(boxes, scores, max_gap=1)] == [[0], [3]]
    assert [t.slices for t in link_slice_detections(boxes, scores, max_gap=2)] == [[0, 3]]


def test_duplicate_box_on_a_slice_joins_the_candidate():
    # two overlapping boxes on slice 1 (IoU 0.79 -> second is a duplicate, not a new lesion)
    boxes, scores = _slices({0: [(A, 0.9)], 1: [(A2, 0.4), (A, 0.8)], 2: [(A, 0.7)]}, depth=3)
    tracks = link_slice_detections(boxes, scores, iou_thr=0.5)
    assert len(tracks) == 1
    assert tracks[0].slices == [0, 1, 2]
    assert tracks[0].detections == [0, 1, 0]  # the 0.8 box represents slice 1
    assert tracks[0].duplicates == [(1, 0)]
    # a duplicate on the first slice of a lesion joins the lesion started there
    boxes, scores = _slices({0: [(A, 0.9), (A2, 0.5)]}, depth=1)
    tracks = link_slice_detections(boxes, scores, iou_thr=0.5)
    assert len(tracks) == 1 and tracks[0].duplicates == [(0, 1)]


def test_each_track_takes_one_box_per_slice_best_overlap_first():
    # two lesions side by side; on slice 1 the best box overlaps both tracks and goes to the
    # one it overlaps most (right: IoU 50/150 vs left: 30/170); the next box then takes the
    # remaining track (left); the two boxes of slice 1 overlap below iou_thr (0.25), so the
    # tracks stay apart
    left, right = [0.0, 0.0, 10.0, 10.0], [12.0, 0.0, 22.0, 10.0]
    middle, near_left = [7.0, 0.0, 17.0, 10.0], [1.0, 0.0, 11.0, 10.0]
    boxes, scores = _slices({0: [(left, 0.9), (right, 0.8)],
                             1: [(near_left, 0.5), (middle, 0.95)]}, depth=2)
    tracks = link_slice_detections(boxes, scores, iou_thr=0.3)
    assert [(t.slices, [b.tolist() for b in t.boxes]) for t in tracks] == [
        ([0, 1], [left, near_left]), ([0, 1], [right, middle])]
    assert all(not t.duplicates for t in tracks)


def test_parallel_tracks_over_one_lesion_are_merged():
    # slice 0: P and Q barely overlap (IoU 0.05) -> two tracks; slice 1: Q' continues Q
    # (IoU 0.33 with Q) but overlaps P' (IoU 0.43): the two tracks are one lesion
    p, q, q1 = [10.0, 10.0, 30.0, 30.0], [28.0, 10.0, 48.0, 30.0], [18.0, 10.0, 38.0, 30.0]
    boxes, scores = _slices({0: [(p, 0.9), (q, 0.5)], 1: [(q1, 0.6), (p, 0.8)],
                             2: [(q1, 0.95)]}, depth=3)
    tracks = link_slice_detections(boxes, scores, iou_thr=0.3)
    assert len(tracks) == 1
    track = tracks[0]
    assert track.slices == [0, 1, 2] and track.detections == [0, 1, 0]
    assert track.scores == pytest.approx([0.9, 0.8, 0.95])
    assert track.duplicates == [(0, 1), (1, 0)]
    # with IoU >= 0.5 required, Q' neither continues Q nor merges with P': three tracks
    tracks = link_slice_detections(boxes, scores, iou_thr=0.5)
    assert [t.slices for t in tracks] == [[0, 1], [0], [1, 2]]


def test_bad_arguments():
    boxes, scores = _slices({0: [(A, 0.9)]}, depth=2)
    with pytest.raises(ValueError, match='iou_thr must be in'):
        link_slice_detections(boxes, scores, iou_thr=0.0)
    with pytest.raises(ValueError, match='max_gap must be an integer >= 0'):
        link_slice_detections(boxes, scores, max_gap=-1)
    with pytest.raises(ValueError, match='min_slices must be an integer >= 1'):
        link_slice_detections(boxes, scores, min_slices=0)
    with pytest.raises(ValueError, match='slice_boxes has 2 slices, slice_scores 1'):
        link_slice_detections(boxes, scores[:1])
    with pytest.raises(ValueError, match=r'slice 0: 1 boxes but 2 scores'):
        link_slice_detections([np.array([A])], [np.array([0.5, 0.6])])
    with pytest.raises(ValueError, match=r'slice 0: boxes must be \(n, 4\)'):
        link_slice_detections([np.zeros((2, 3))], [np.zeros(2)])


def test_measurements_in_mm_and_physical_centre():
    # grid: spacing 0.5 x 0.8 x 2 mm, a rotation about z and a non-trivial origin
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    image = sitk.Image(64, 64, 20, sitk.sitkInt16)
    image.SetSpacing((0.5, 0.8, 2.0))
    image.SetOrigin((-120.0, 35.5, 410.0))
    image.SetDirection(direction)
    geometry = VolumeGeometry.of_image(image)
    boxes, scores = _slices({4: [(A, 0.5)], 5: [(A2, 0.9)], 6: [(A, 0.6)],
                             9: [(B, 0.95)]}, depth=20)
    candidates = measure_lesion_candidates(link_slice_detections(boxes, scores), geometry)
    assert [c.candidate_id for c in candidates] == [1, 2]
    first, second = candidates  # B (0.95) ranks first
    assert (first.first_slice, first.last_slice, first.best_slice) == (9, 9, 9)
    assert (second.first_slice, second.last_slice, second.best_slice) == (4, 6, 5)
    assert second.box.tolist() == A2
    assert second.max_score == pytest.approx(0.9)
    assert second.mean_score == pytest.approx((0.5 + 0.9 + 0.6) / 3)
    assert second.num_slices_detected == 3
    # best box 20 px wide x 11 px high: 20 * 0.5 = 10 mm, 11 * 0.8 = 8.8 mm
    assert second.long_axis_mm == pytest.approx(10.0)
    assert second.short_axis_mm == pytest.approx(8.8)
    assert second.z_extent_mm == pytest.approx(3 * 2.0)
    assert second.center_index.tolist() == [21.0, 15.5, 5.0]
    expected = image.TransformContinuousIndexToPhysicalPoint((21.0, 15.5, 5.0))
    assert second.center_mm == pytest.approx(expected)
    assert second.center_index_original == pytest.approx([21.0, 15.5, 5.0])
    assert first.long_axis_mm == pytest.approx(10 * 0.8) and first.short_axis_mm == \
        pytest.approx(10 * 0.5)

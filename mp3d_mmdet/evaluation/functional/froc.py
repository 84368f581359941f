"""Free-response ROC (FROC) of lesion detections, the DeepLesion protocols, vectorised.

The protocol is that of the evaluation code shared by 3DCE, MULAN and AlignShift
(``sens_at_FP``/``FROC`` there) and, with the two differences in
:mod:`.froc_protocols`, of the official MP3D code; ``tests/froc_reference.py`` spells both
out as plain loops and is the readable specification this module is tested against. In short:

1. All detections of all images are ranked together by descending score. Ties keep the input
   order (images in list order, detections in array order): the sort is stable.
2. Walking down the ranking, a detection whose best IoU with the ground truth of *its own
   image* is below ``iou_thr`` is a false positive (so is every detection on an image without
   ground truth). Otherwise every ground-truth box of that image with IoU >= ``iou_thr`` that is
   not yet hit becomes a hit (one detection may hit several lesions); a detection that only
   overlaps already-hit lesions is neither a hit nor a false positive.
3. After each detection the curve gets a point ``(fp_count / num_images, hits / num_gts)``;
   ``num_images`` counts *all* images, with or without detections or ground truth.
4. The sensitivity at an FP rate ``f`` is read from the curve by linear interpolation. Under
   the default ``'deeplesion'`` protocol, where the curve reaches ``f`` exactly, the last
   point with that FP count is used (the highest sensitivity reached before the next false
   positive); beyond the last point the final sensitivity is returned, below the first point
   0. The ``'mp3d'`` protocol reads it as scipy's ``interp1d`` with extrapolation does
   (:func:`.froc_protocols.interp1d_sensitivity`) and computes the IoU without the +1.

Vectorisation. Whether a detection is a false positive, and which lesions it newly hits,
depends only on the detections ranked before it *in the same image*. For every lesion ``g``
the detection that hits it is the earliest-ranked detection with IoU >= ``iou_thr`` to ``g``;
a detection is a false positive iff it has IoU >= ``iou_thr`` with no lesion of its image.
Both follow from the (detection, lesion) pairs of each image, enumerated flat
(``sum_i n_i * g_i`` pairs, no padding; the IoU is computed for the pairs that overlap in x):
the hitting detection of a lesion is the minimum rank over its pairs (``np.minimum.at``),
and the curve is two cumulative sums over the ranking.

Differences from the published 3DCE / MULAN / AlignShift code, where it is ill-defined: it
ranks with an unstable ``argsort`` (arbitrary order among equal scores), fails on an image
without ground truth (3DCE), and reads rule 4 with ``scipy.interpolate.interp1d``, which at
an FP rate shared by several points returns the first of them (NaN when they start the
curve), and (3DCE, ``fill_value='extrapolate'``) extrapolates below the first point; the
``'deeplesion'`` reading is the one these papers describe (the sensitivity reached at a
number of false positives, held beyond the curve). The ``'mp3d'`` protocol keeps scipy's
reading, because the official MP3D numbers are computed with it.
"""
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ...structures.boxes import as_boxes, overlap_from_columns
from .froc_protocols import FROCProtocol, get_froc_protocol

__all__ = [
    'DEFAULT_FPS', 'BoxMatching', 'FROCCurve', 'froc_curve', 'lesion_subset_froc_curves',
    'sens_at_fp'
]

#: The FP-per-image rates at which DeepLesion papers report sensitivity.
DEFAULT_FPS: Tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class FROCCurve:
    """The FROC curve: one point per ranked detection.

    Attributes:
        fp_per_image: ``(N,)`` float64, non-decreasing: false positives among the first
            ``k + 1`` ranked detections divided by ``num_images``.
        sensitivity: ``(N,)`` float64 in ``[0, 1]``, non-decreasing: lesions hit by the first
            ``k + 1`` ranked detections divided by ``num_gts``.
        scores: ``(N,)`` float64, non-increasing: the score of the ``k``-th ranked detection
            (the score threshold of point ``k``).
        num_images: number of images the FP rate is divided by.
        num_gts: number of ground-truth lesions the sensitivity is divided by.
    """

    fp_per_image: np.ndarray
    sensitivity: np.ndarray
    scores: np.ndarray
    num_images: int
    num_gts: int

    def sens_at_fp(self, fps: Sequence[float] = DEFAULT_FPS,
                   protocol: Union[str, FROCProtocol] = 'deeplesion') -> np.ndarray:
        """Sensitivity at each FP-per-image rate in ``fps``, read with the ``protocol``'s rule.

        Args:
            fps: ``(F,)`` FP-per-image rates, finite and >= 0.
            protocol: a name in :data:`~.froc_protocols.FROC_PROTOCOLS` or a
                :class:`~.froc_protocols.FROCProtocol`.

        Returns:
            ``(F,)`` float64 sensitivities.
        """
        return get_froc_protocol(protocol).read_sensitivity(self.fp_per_image,
                                                            self.sensitivity, fps)


def froc_curve(boxes_per_image: Sequence[np.ndarray],
               gts_per_image: Sequence[np.ndarray],
               iou_thr: float = 0.5,
               legacy_plus_one: bool = True,
               ignored_gts_per_image: Optional[Sequence[np.ndarray]] = None) -> FROCCurve:
    """The FROC curve of single-class detections under the DeepLesion protocol.

    Args:
        boxes_per_image: one ``(n_i, 5)`` float array ``[x1, y1, x2, y2, score]`` per image
            (``n_i`` may be 0; an empty array of any shape counts as no detection).
        gts_per_image: one ``(g_i, 4)`` float array ``[x1, y1, x2, y2]`` per image, same
            coordinate frame as the detections (``g_i`` may be 0).
        iou_thr: a detection hits a lesion when their IoU is >= ``iou_thr``; in ``(0, 1]``.
        legacy_plus_one: IoU with inclusive pixel coordinates (width ``x2 - x1 + 1``), as the
            published code computes it; ``False`` for continuous coordinates.
        ignored_gts_per_image: optional, one ``(h_i, 4)`` array per image of lesions outside
            the evaluated set: a detection that is not a hit but has IoU >= ``iou_thr`` with one
            of them is neither a hit nor a false positive (they never count as hits).

    Returns:
        :class:`FROCCurve` with one point per detection, in ranking order.

    Raises:
        ValueError: mismatched list lengths, a malformed or non-finite array, an inverted box,
            ``iou_thr`` outside ``(0, 1]``, or no ground-truth box at all (the sensitivity
            would be undefined).
    """
    if ignored_gts_per_image is None:
        matches = _match(boxes_per_image, gts_per_image, iou_thr,
                         BoxMatching(legacy_plus_one=legacy_plus_one))
        return _curve(matches, np.ones(matches.num_gts, dtype=bool), others_are_fp=True)
    if len(ignored_gts_per_image) != len(gts_per_image):
        raise ValueError(f'ignored_gts_per_image must have one entry per image '
                         f'({len(gts_per_image)}), got {len(ignored_gts_per_image)}')
    # validate first, so that errors name the right argument
    _concat_per_image(gts_per_image, 4, 'gts_per_image')
    _concat_per_image(ignored_gts_per_image, 4, 'ignored_gts_per_image')
    # one lesion list per image: the evaluated lesions, then the ignored ones
    combined = [np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1, 4),
                                np.asarray(h, dtype=np.float64).reshape(-1, 4)])
                for g, h in zip(gts_per_image, ignored_gts_per_image)]
    counted = [np.arange(len(c)) < len(np.asarray(g).reshape(-1, 4))
               for c, g in zip(combined, gts_per_image)]
    matches = _match(boxes_per_image, combined, iou_thr,
                     BoxMatching(legacy_plus_one=legacy_plus_one))
    return _curve(matches, np.concatenate(counted), others_are_fp=False)


def lesion_subset_froc_curves(
        boxes_per_image: Sequence[np.ndarray],
        gts_per_image: Sequence[np.ndarray],
        subset_masks: Mapping[str, Sequence[np.ndarray]],
        iou_thr: float = 0.5,
        legacy_plus_one: bool = True,
        out_of_subset_detections: str = 'false_positive') -> Dict[str, Optional[FROCCurve]]:
    """FROC curves of several lesion subsets (e.g. lesion types), all images and detections kept.

    The subset's lesions are the ground truth; a detection that overlaps (IoU >=
    ``iou_thr``) only lesions outside the subset is a false positive
    (``out_of_subset_detections='false_positive'``: the same as :func:`froc_curve` on the
    filtered ground truth, as the DeepLesion authors' released code evaluates subsets) or
    neither a hit nor a false positive (``'ignore'``: :func:`froc_curve` with the other lesions
    as ``ignored_gts_per_image``). Ranking and IoUs are computed once for all subsets.

    Args:
        boxes_per_image: one ``(n_i, 5)`` array ``[x1, y1, x2, y2, score]`` per image.
        gts_per_image: one ``(g_i, 4)`` array ``[x1, y1, x2, y2]`` per image (all lesions).
        subset_masks: subset name -> True for the lesions of the subset: one ``(g_i,)`` bool
            array per image, or one ``(G,)`` bool array over all lesions in image order (the
            rows of ``np.concatenate(gts_per_image)``).
        iou_thr: IoU threshold of a hit, in ``(0, 1]``.
        legacy_plus_one: inclusive-pixel IoU (published convention) or continuous.
        out_of_subset_detections: ``'false_positive'`` or ``'ignore'``.

    Returns:
        subset name -> its curve, or None for a subset without lesions.
    """
    if out_of_subset_detections not in ('false_positive', 'ignore'):
        raise ValueError(f"out_of_subset_detections must be 'false_positive' or 'ignore', got "
                         f'{out_of_subset_detections!r}')
    matches = _match(boxes_per_image, gts_per_image, iou_thr,
                     BoxMatching(legacy_plus_one=legacy_plus_one),
                     allow_no_gt=True)
    curves: Dict[str, Optional[FROCCurve]] = {}
    for name, masks in subset_masks.items():
        counted = _flat_lesion_mask(masks, matches.gt_counts, f'subset_masks[{name!r}]')
        curves[name] = (_curve(matches, counted,
                               others_are_fp=out_of_subset_detections == 'false_positive')
                        if counted.any() else None)
    return curves


def _flat_lesion_mask(masks, gt_counts: np.ndarray, name: str) -> np.ndarray:
    """A ``(G,)`` bool mask from a flat mask or from one ``(g_i,)`` mask per image."""
    num_gts = int(gt_counts.sum())
    if isinstance(masks, np.ndarray) and masks.ndim == 1 and masks.dtype == bool:
        if len(masks) != num_gts:
            raise ValueError(f'{name} must flag each of the {num_gts} lesions, got '
                             f'{len(masks)} flags')
        return masks
    if len(masks) != len(gt_counts):
        raise ValueError(f'{name} must have one mask per image ({len(gt_counts)}), got '
                         f'{len(masks)}')
    sizes = np.fromiter((np.size(m) for m in masks), dtype=np.int64, count=len(masks))
    if (sizes != gt_counts).any():
        i = int(np.argmax(sizes != gt_counts))
        raise ValueError(f'{name}[{i}] must have shape ({gt_counts[i]},) (one flag per lesion '
                         f'of image {i}), got {np.shape(masks[i])}')
    return (np.concatenate([np.asarray(m, dtype=bool).reshape(-1) for m in masks])
            if len(masks) else np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class _Matches:
    """The ranking and the overlapping (detection, lesion) pairs, shared by several curves."""
    num_images: int
    gt_counts: np.ndarray  # (num_images,) lesions per image
    scores: np.ndarray  # (N,) scores in ranking order
    pair_rank: np.ndarray  # (P,) rank of the detection of each pair with IoU >= iou_thr
    pair_gt: np.ndarray  # (P,) index of its lesion among all lesions (image order)
    unit: str = 'image'  # what the lists are per, for messages

    @property
    def num_gts(self) -> int:
        return int(self.gt_counts.sum())


@dataclass(frozen=True)
class BoxMatching:
    """How detections are matched to lesions: box layout, overlap measure, convention.

    Attributes:
        axes: 2 (boxes ``[x1, y1, x2, y2]``) or 3 (``[x1, y1, z1, x2, y2, z2]``).
        metric: an overlap measure of :data:`mp3d_mmdet.structures.boxes.OVERLAP_METRICS`.
        legacy_plus_one: inclusive pixel / voxel indices (sides ``hi - lo + 1``).
        key_slice_gt: 3D detections against lesions drawn on one slice,
            ``[x1, y1, z, x2, y2, z]``: the overlap is the in-plane one where the detection's
            z range holds ``z``, else 0.
        unit: what the lists are per (``'image'`` or ``'volume'``), for messages.
        thr_name: the threshold's argument name, for messages.
    """
    axes: int = 2
    metric: str = 'iou'
    legacy_plus_one: bool = True
    key_slice_gt: bool = False
    unit: str = 'image'
    thr_name: str = 'iou_thr'


def _match(boxes_per_image: Sequence[np.ndarray], gts_per_image: Sequence[np.ndarray],
           thr: float, matching: BoxMatching, allow_no_gt: bool = False) -> _Matches:
    """Validate the input, rank the detections, find the pairs with overlap >= ``thr``."""
    boxes_name, gts_name = f'boxes_per_{matching.unit}', f'gts_per_{matching.unit}'
    num_images = len(boxes_per_image)
    if len(gts_per_image) != num_images:
        raise ValueError(f'{boxes_name} and {gts_name} must have one entry per '
                         f'{matching.unit}, got {num_images} and {len(gts_per_image)}')
    if not 0.0 < thr <= 1.0:
        raise ValueError(f'{matching.thr_name} must be in (0, 1], got {thr}')
    # coordinates as rows (x1, y1[, z1], x2, y2[, z2][, score]) of all boxes, concatenated
    dets, det_counts = _concat_per_image(boxes_per_image, 2 * matching.axes + 1, boxes_name)
    gts, gt_counts = _concat_per_image(gts_per_image, 2 * matching.axes, gts_name)
    if gts.shape[1] == 0 and not allow_no_gt:
        raise ValueError(f'{gts_name} holds no ground-truth box: the sensitivity is undefined')
    if matching.key_slice_gt and (gts[2] != gts[5]).any():
        row = int(np.argmax(gts[2] != gts[5]))
        raise ValueError(f'{gts_name}: key-slice ground truth must be [x1, y1, z, x2, y2, z] '
                         f'(z1 == z2), lesion {row} (in {matching.unit} order) is '
                         f'{gts[:, row].tolist()}')

    det_image = np.repeat(np.arange(num_images), det_counts)
    scores = dets[2 * matching.axes]
    order = _stable_descending_order(scores)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    pair_det, pair_gt = _overlapping_pairs(dets, det_image, gts, gt_counts, thr, matching)
    return _Matches(num_images=num_images, gt_counts=gt_counts, scores=scores[order],
                    pair_rank=rank[pair_det], pair_gt=pair_gt, unit=matching.unit)


def _curve(matches: _Matches, counted: np.ndarray, others_are_fp: bool) -> FROCCurve:
    """The curve with the lesions flagged in ``counted`` (``(G,)`` bool) as ground truth.

    A detection overlapping only uncounted lesions is a false positive if ``others_are_fp``,
    otherwise neither a hit nor a false positive.
    """
    num_dets, num_counted = len(matches.scores), int(counted.sum())
    if num_counted == 0:
        raise ValueError(f'gts_per_{matches.unit} holds no ground-truth box: the sensitivity '
                         'is undefined')
    in_set = counted[matches.pair_gt]
    rank, gt = matches.pair_rank[in_set], matches.pair_gt[in_set]
    not_fp = np.zeros(num_dets, dtype=bool)  # indexed by rank
    not_fp[rank if others_are_fp else matches.pair_rank] = True
    # each lesion is hit by the earliest-ranked detection that overlaps it
    first_rank = np.full(len(counted), num_dets, dtype=np.int64)
    np.minimum.at(first_rank, gt, rank)
    new_hits = np.bincount(first_rank[first_rank < num_dets], minlength=num_dets)
    return FROCCurve(
        fp_per_image=np.cumsum(~not_fp) / matches.num_images,
        sensitivity=np.cumsum(new_hits) / num_counted,
        scores=matches.scores,
        num_images=matches.num_images,
        num_gts=num_counted)


def sens_at_fp(boxes_per_image: Sequence[np.ndarray],
               gts_per_image: Sequence[np.ndarray],
               fps: Sequence[float] = DEFAULT_FPS,
               iou_thr: float = 0.5,
               legacy_plus_one: Optional[bool] = None,
               protocol: Union[str, FROCProtocol] = 'deeplesion') -> np.ndarray:
    """Sensitivity at the given average false positives per image.

    Args:
        boxes_per_image: one ``(n_i, 5)`` array ``[x1, y1, x2, y2, score]`` per image.
        gts_per_image: one ``(g_i, 4)`` array ``[x1, y1, x2, y2]`` per image.
        fps: FP-per-image rates (finite, >= 0).
        iou_thr: IoU threshold of a hit, in ``(0, 1]``.
        legacy_plus_one: inclusive-pixel IoU or continuous; None: the ``protocol``'s.
        protocol: ``'deeplesion'`` (3DCE / MULAN / AlignShift, the default) or ``'mp3d'``
            (the official MP3D evaluation), see :mod:`.froc_protocols`.

    Returns:
        ``(len(fps),)`` float64 array of sensitivities, in ``[0, 1]`` (``'mp3d'`` outside
        the curve: see :func:`~.froc_protocols.interp1d_sensitivity`).
    """
    protocol = get_froc_protocol(protocol)
    if legacy_plus_one is None:
        legacy_plus_one = protocol.legacy_plus_one
    curve = froc_curve(boxes_per_image, gts_per_image, iou_thr, legacy_plus_one)
    return curve.sens_at_fp(fps, protocol)


def _overlapping_pairs(dets: np.ndarray, det_image: np.ndarray, gts: np.ndarray,
                       gt_counts: np.ndarray, thr: float,
                       matching: BoxMatching) -> Tuple[np.ndarray, np.ndarray]:
    """All (detection, lesion) pairs of one image with overlap >= ``thr``.

    Args:
        dets: ``(>= 2 * axes, N)`` coordinate rows ``x1, y1[, z1], x2, y2[, z2]`` of the
            detections of all images, concatenated in image order.
        det_image: ``(N,)`` int image index of each detection (non-decreasing).
        gts: ``(2 * axes, G)`` coordinate rows of the lesions of all images, in image order.
        gt_counts: ``(num_images,)`` int number of lesions per image.
        thr: the smallest overlap of a pair, > 0.
        matching: the box layout and overlap measure.

    Returns:
        Two ``(P,)`` int arrays: detection index, lesion index (columns of ``dets``/``gts``).
    """
    gt_start = np.cumsum(gt_counts) - gt_counts
    pairs_per_det = gt_counts[det_image]
    pair_det = np.repeat(np.arange(len(det_image)), pairs_per_det)
    # lesion index of pair p = gt_start[image] + (p - first pair of its detection)
    shift = np.cumsum(pairs_per_det) - pairs_per_det - gt_start[det_image]
    pair_gt = np.arange(len(pair_det)) - np.repeat(shift, pairs_per_det)
    # an overlap >= thr > 0 needs a positive intersection along x: compute the overlap of the
    # pairs that overlap in x only (the same formula on the same numbers, so the same result)
    axes = matching.axes
    extra = 1.0 if matching.legacy_plus_one else 0.0
    ax1, ax2 = dets[0].take(pair_det), dets[axes].take(pair_det)
    bx1, bx2 = gts[0].take(pair_gt), gts[axes].take(pair_gt)
    width = np.minimum(ax2, bx2)
    width -= np.maximum(ax1, bx1)
    width += extra
    candidate = np.flatnonzero(width > 0)
    pair_det, pair_gt = pair_det[candidate], pair_gt[candidate]
    measured = range(1, 2 if matching.key_slice_gt else axes)  # axes after x
    overlap = overlap_from_columns(
        [ax1[candidate]] + [dets[k].take(pair_det) for k in measured],
        [ax2[candidate]] + [dets[axes + k].take(pair_det) for k in measured],
        [bx1[candidate]] + [gts[k].take(pair_gt) for k in measured],
        [bx2[candidate]] + [gts[axes + k].take(pair_gt) for k in measured],
        legacy_plus_one=matching.legacy_plus_one, metric=matching.metric)
    if matching.key_slice_gt:  # the lesion's slice must lie in the detection's z range
        z = gts[2].take(pair_gt)
        overlap *= (dets[2].take(pair_det) <= z) & (z <= dets[5].take(pair_det))
    keep = overlap >= thr
    return pair_det[keep], pair_gt[keep]


def _stable_descending_order(scores: np.ndarray) -> np.ndarray:
    """``np.argsort(-scores, kind='stable')``, computed faster.

    NumPy's unstable argsort is SIMD-accelerated and several times faster than its stable
    (timsort) one; equal scores are then put back into input order run by run.

    Args:
        scores: ``(N,)`` float64, finite.

    Returns:
        ``(N,)`` int64 permutation: descending score, ties in ascending index order.
    """
    keys = -scores
    order = np.argsort(keys)
    sorted_keys = keys[order]
    tie = sorted_keys[1:] == sorted_keys[:-1]  # position i+1 continues the run of position i
    if tie.any():
        in_run = np.zeros(len(order), dtype=bool)
        in_run[1:] |= tie
        in_run[:-1] |= tie
        run_id = np.cumsum(np.concatenate(([True], ~tie)))
        members = np.flatnonzero(in_run)
        tied = order[members]
        order[members] = tied[np.lexsort((tied, run_id[members]))]
    return order


def _concat_per_image(arrays: Sequence[np.ndarray], num_cols: int,
                      arg_name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Concatenate per-image ``(k_i, num_cols)`` arrays, validated.

    Returns:
        ``(num_cols, K)`` float64 C-contiguous array (one row per coordinate, one column per
        box: contiguous coordinate rows make the vectorised IoU fast) and the ``(num_images,)``
        int64 counts ``k_i``.
    """
    parts = [as_boxes(array, f'{arg_name}[{i}]', num_cols).T for i, array in enumerate(arrays)]
    counts = np.fromiter((part.shape[1] for part in parts), dtype=np.int64, count=len(parts))
    rows = (np.concatenate(parts, axis=1, dtype=np.float64) if parts else
            np.zeros((num_cols, 0)))
    return rows, counts

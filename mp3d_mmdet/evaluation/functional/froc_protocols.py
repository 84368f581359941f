"""The two published ways of turning DeepLesion detections into FROC sensitivities.

Both rank all detections of all images together, count a detection as a hit of every
not-yet-hit lesion of its image it overlaps with IoU >= 0.5, and divide false positives by
the number of images (:func:`mp3d_mmdet.evaluation.functional.froc.froc_curve`). They differ
in two rules, which a :class:`FROCProtocol` fixes:

================  =====================================  =====================================
rule              ``'deeplesion'`` (3DCE, MULAN,          ``'mp3d'`` (official MP3D code,
                  AlignShift; the default)                ``mmdet/datasets/lesion.py``)
================  =====================================  =====================================
IoU               inclusive pixels: ``w = x2 - x1 + 1``   continuous: ``w = x2 - x1``
reading the       linear between curve points; at a       ``scipy.interpolate.interp1d(
curve at ``f``    rate the curve reaches, its *last*      fp_per_img, sens,
FPs per image     point there; beyond the curve's end     fill_value='extrapolate')(f)`` on
                  its final sensitivity; below its        one point per ranked detection: at
                  start 0                                 a rate the curve reaches, its
                                                          *first* point there; outside the
                                                          curve, the line through the two
                                                          outermost points
lesion box        clipped to the image (the dataset's     as the annotation file writes it
                  ``bbox``)                               (``file_bbox`` where it differs)
================  =====================================  =====================================

The two readings agree between the curve's FP steps (the sensitivity does not change at an
FP step, so both interpolate along a flat segment); they differ where a requested rate is
reached exactly, ``f * num_images`` false positives (on DeepLesion's 4,831 / 4,817 test
images: at 1, 2, 4, 8 and 16 FPs per image, not at 0.5), and outside the curve. At an exact
rate the ``'mp3d'`` reading takes the sensitivity when the ``f * num_images``-th false
positive is ranked, the ``'deeplesion'`` reading the higher one reached before the next
false positive. The IoU convention matters for small lesions: a box with ``x2 - x1 = 4`` is
4 pixels wide without the +1 and 5 with it.

A lesion box that reaches past the image border is clipped by ``DeepLesionDataset`` (for
training, and for the ``'deeplesion'`` evaluation); the official MP3D evaluation compares
detections with the box as the file writes it, so under ``'mp3d'`` the FROC metric takes the
instance's ``file_bbox`` (set by the dataset only where clipping changed the box).

The official script reads the curve only up to its end: requested rates beyond the last
point are dropped and the end point's rate read instead, so its printed list is shorter. Here
every requested rate is read with the same ``interp1d`` rule, which beyond the end gives the
final sensitivity when the last ranked detection is a false positive and, because two
consecutive points of an FROC curve never differ in both coordinates, +inf or NaN otherwise
(a zero-length segment); ``FROCMetric`` warns when a rate lies beyond the curve. Detections
with equal scores are ranked in input order (the official code's ``argsort`` leaves their
order to the sorting algorithm).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'FROCProtocol', 'FROC_PROTOCOLS', 'get_froc_protocol', 'interpolate_sensitivity',
    'interp1d_sensitivity', 'check_fps'
]


def check_fps(fps: Sequence[float], distinct: bool = False) -> np.ndarray:
    """The FP-rate rule: ``fps`` as a 1-D float64 array of finite rates >= 0, in the given
    order.

    Reading a curve takes any such rates; a report that averages over its rates (the FROC
    metric, ``mp3d-eval-froc``, ``mp3d-eval-volumes``) passes ``distinct=True``, since a rate
    given twice would count twice in the mean.

    Args:
        fps: ``(F,)`` FP-per-image (or per-volume) rates.
        distinct: refuse a rate given more than once.

    Raises:
        ValueError: another shape, a rate that is not finite or < 0, or (``distinct``) a
            repeated rate, e.g. ``"fps must not repeat a rate (0.5 is given more than once),
            got [4.0, 0.5, 2.0, 0.5]"``.
    """
    fps = np.atleast_1d(np.asarray(fps, dtype=np.float64))
    if fps.ndim != 1:
        raise ValueError(f'fps must be a 1-D sequence of FP-per-image rates, got shape '
                         f'{fps.shape}')
    if not np.isfinite(fps).all() or (fps < 0).any():
        raise ValueError(f'fps must be finite and >= 0, got {fps.tolist()}')
    values, counts = np.unique(fps, return_counts=True)
    if distinct and (counts > 1).any():
        raise ValueError(f'fps must not repeat a rate ({values[counts > 1][0]:g} is given '
                         f'more than once), got {fps.tolist()}')
    return fps


def _curve_arrays(fp_per_image: np.ndarray,
                  sensitivity: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    x = np.asarray(fp_per_image, dtype=np.float64)
    y = np.asarray(sensitivity, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f'fp_per_image and sensitivity must be 1-D arrays of one length, got '
                         f'shapes {x.shape} and {y.shape}')
    return x, y


def interpolate_sensitivity(fp_per_image: np.ndarray, sensitivity: np.ndarray,
                            fps: Sequence[float]) -> np.ndarray:
    """Read sensitivities off an FROC curve, the ``'deeplesion'`` rule.

    Linear interpolation between the raw curve points; where ``fp_per_image`` equals a
    requested rate exactly, the last point with that value is used; beyond the last point the
    final sensitivity, below the first point (or on an empty curve) 0.

    Args:
        fp_per_image: ``(N,)`` non-decreasing FP rates of the curve points.
        sensitivity: ``(N,)`` sensitivities of the curve points.
        fps: ``(F,)`` FP-per-image rates, finite and >= 0, in any order.

    Returns:
        ``(F,)`` float64 sensitivities, in the order of ``fps``.
    """
    fps = check_fps(fps)
    x, y = _curve_arrays(fp_per_image, sensitivity)
    if len(x) == 0:
        return np.zeros(len(fps))
    last = np.searchsorted(x, fps, side='right') - 1  # last point with x <= f; -1: below curve
    k = np.clip(last, 0, len(x) - 1)
    nxt = np.minimum(k + 1, len(x) - 1)
    dx = x[nxt] - x[k]
    frac = np.zeros(len(fps))
    np.divide(fps - x[k], dx, out=frac, where=dx > 0)
    at_point = (x[k] == fps) | (k == len(x) - 1)
    value = np.where(at_point, y[k], y[k] + (y[nxt] - y[k]) * frac)
    return np.where(last >= 0, value, 0.0)


def interp1d_sensitivity(fp_per_image: np.ndarray, sensitivity: np.ndarray,
                         fps: Sequence[float]) -> np.ndarray:
    """Read sensitivities off an FROC curve, the ``'mp3d'`` rule.

    The value of ``scipy.interpolate.interp1d(fp_per_image, sensitivity, kind='linear',
    fill_value='extrapolate')`` at ``fps``, computed with the same arithmetic: for a rate
    ``f`` the segment is ``(x[i - 1], x[i])`` with ``i`` the first point where
    ``x[i] >= f``, clipped to ``1 .. N - 1``; the value is
    ``(y[i] - y[i - 1]) / (x[i] - x[i - 1]) * (f - x[i - 1]) + y[i - 1]``. So at a rate the
    curve reaches exactly it is the first point with that rate, and outside the curve the line
    through its two outermost points continues (below 0 or above 1 if it gets there). Where
    that segment has zero length the value is NaN or infinite, as scipy's. Curves scipy cannot
    interpolate get a value too: an empty curve 0, a one-point curve its sensitivity from its
    rate on and 0 below.

    Args:
        fp_per_image: ``(N,)`` non-decreasing FP rates, one point per ranked detection.
        sensitivity: ``(N,)`` sensitivities of the curve points.
        fps: ``(F,)`` FP-per-image rates, finite and >= 0, in any order.

    Returns:
        ``(F,)`` float64 values, in the order of ``fps``.
    """
    fps = check_fps(fps)
    x, y = _curve_arrays(fp_per_image, sensitivity)
    if len(x) < 2:
        return np.where(fps >= x[0], y[0], 0.0) if len(x) else np.zeros(len(fps))
    hi = np.searchsorted(x, fps, side='left').clip(1, len(x) - 1)
    lo = hi - 1
    with np.errstate(divide='ignore', invalid='ignore'):
        slope = (y[hi] - y[lo]) / (x[hi] - x[lo])
        return slope * (fps - x[lo]) + y[lo]


@dataclass(frozen=True)
class FROCProtocol:
    """A published FROC evaluation: the IoU convention and how the curve is read.

    Attributes:
        name: ``'deeplesion'`` or ``'mp3d'``.
        legacy_plus_one: IoU with inclusive pixel coordinates (``w = x2 - x1 + 1``).
        read_sensitivity: ``(fp_per_image (N,), sensitivity (N,), fps (F,)) -> (F,)``.
        description: one line for reports.
        clip_gt_to_image: evaluate against lesion boxes clipped to the image (the dataset's
            ``bbox``); False: as the annotation file writes them (``file_bbox`` where set).
    """
    name: str
    legacy_plus_one: bool
    read_sensitivity: Callable[[np.ndarray, np.ndarray, Sequence[float]], np.ndarray]
    description: str
    clip_gt_to_image: bool = True


#: The protocols by name (module docstring): which to use to compare with which paper.
FROC_PROTOCOLS: Dict[str, FROCProtocol] = {
    'deeplesion': FROCProtocol(
        'deeplesion', True, interpolate_sensitivity,
        'DeepLesion protocol of 3DCE / MULAN / AlignShift: IoU with +1 pixel, curve read '
        'at the last point of a rate and held beyond its end'),
    'mp3d': FROCProtocol(
        'mp3d', False, interp1d_sensitivity,
        'official MP3D evaluation (mmdet/datasets/lesion.py): IoU without +1, curve read '
        "with scipy interp1d(fill_value='extrapolate'), lesion boxes as the file writes them",
        clip_gt_to_image=False),
}


def get_froc_protocol(protocol: Union[str, FROCProtocol]) -> FROCProtocol:
    """The :class:`FROCProtocol` of a name in :data:`FROC_PROTOCOLS` (or the protocol itself).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(protocol, FROCProtocol):
        return protocol
    if protocol not in FROC_PROTOCOLS:
        raise ValueError(f'unknown FROC protocol {protocol!r}; choose one of '
                         f'{sorted(FROC_PROTOCOLS)}')
    return FROC_PROTOCOLS[protocol]

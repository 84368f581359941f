"""Slice maths shared by every code path that builds an N-slice CT input.

numpy plus OpenCV calls for speed (``cv2.addWeighted``, ``cv2.threshold``); no mmcv, mmdet
or torch imports in this module.

One function chain turns "a key slice + its neighbours" into the detector input, whatever
the slices come from:

* the DeepLesion release (a folder of 16-bit PNG files, one per slice, only a window of
  slices around each key slice stored): ``available_indices`` = the slice files that exist,
  ``read_slice(index)`` = the decoded ``<index:03d>.png`` (uint16) with
  ``value_offset=-32768`` (see :class:`mp3d_mmdet.datasets.transforms.LoadCTSlices`);
* a whole CT volume held in memory as a ``(Z, H, W)`` HU array (e.g. from SimpleITK):
  ``available_indices = range(Z)``, ``read_slice(index) = volume[index]``,
  ``value_offset=0`` (see :func:`sample_slices_from_volume`).

The steps, all used by both paths:

1. :func:`neighbour_positions` -- the ``N`` (odd) target positions are ``k * target_interval``
   mm from the key slice, ``k = -(N // 2) .. N // 2``; in slice-index units the position is
   the fractional index ``key_index + k * target_interval / slice_interval``.
2. :func:`neighbour_sampling_plan` -- each fractional position ``p`` is linearly interpolated
   between the two nearest real slices ``floor(p)`` and ``ceil(p)`` with weight
   ``p - floor(p)`` on the upper one. **Fallback rule for missing slices:** a needed slice
   index that is not available is replaced by the nearest available slice *between it and the
   key slice* (walking towards the key slice; the key slice itself must be available). This
   is the rule of the DeepLesion reference code (3DCE ``get_slice_name``) and, for a whole
   volume, amounts to replicating the first/last slice beyond the volume ends. The weight is
   kept, so a position whose two slices collapse onto one slice takes that slice's values.
3. :func:`assemble_slices` -- reads every distinct slice of the plan once, mixes the pairs,
   then clips HU to ``hu_window`` and scales linearly to ``out_range`` (the mapping of
   :func:`clip_and_scale_hu`; default ``[-1024, 1050]`` HU -> ``[0, 255]``, the paper's
   window). Interpolation happens on HU values *before* clipping, as in the reference code.

Array conventions: slice images are ``(H, W)``; the assembled input is ``(H, W, N)`` float32
with the key slice in channel ``N // 2`` and channel order = increasing slice index
(increasing file number). Its memory is channel-planar: an ``(H, W, N)`` view of a
C-contiguous ``(N, H, W)`` array (:func:`is_channel_planar`), which the N-slice pipeline keeps
up to the ``(N, H, W)`` network input.
"""
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..utils.hu_window import (DEFAULT_HU_WINDOW, DEFAULT_OUT_RANGE, clip_and_scale_hu,
                               window_offset_and_scale)
from ..utils.validation import check_num_slices

__all__ = [
    'PNG_HU_OFFSET', 'DEFAULT_HU_WINDOW', 'DEFAULT_OUT_RANGE', 'SlicePlan', 'png_to_hu',
    'is_channel_planar',
    'clip_and_scale_hu', 'neighbour_positions', 'neighbour_sampling_plan', 'assemble_slices',
    'sample_slices_from_volume'
]

#: DeepLesion stores ``HU + 32768`` as uint16 in its PNG files.
PNG_HU_OFFSET = 32768

# raw slice dtypes cv2.addWeighted reads directly; others are converted to float32 first
_CV2_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16),
               np.dtype(np.float32), np.dtype(np.float64))

# fractional positions closer than this to an integer are treated as that integer, so that
# e.g. 2.5 mm / 1.25 mm = 2.0000000001 does not create a needless interpolation.
_INTEGER_TOLERANCE = 1e-6


class SlicePlan(NamedTuple):
    """Where the ``N`` channels of an input come from (all arrays of shape ``(N,)``).

    Channel ``c`` = ``(1 - upper_weight[c]) * slice[lower[c]] + upper_weight[c] * slice[upper[c]]``.

    Attributes:
        lower: int64 slice indices, after the missing-slice fallback.
        upper: int64 slice indices, after the missing-slice fallback.
        upper_weight: float64 weights in ``[0, 1)`` on ``upper``.
    """
    lower: np.ndarray
    upper: np.ndarray
    upper_weight: np.ndarray


def png_to_hu(values: np.ndarray) -> np.ndarray:
    """Convert DeepLesion PNG values (uint16, ``HU + 32768``) to HU.

    Args:
        values: uint16 array of any shape.

    Returns:
        Float32 array of the same shape, ``values - 32768``.
    """
    if values.dtype != np.uint16:
        raise ValueError(f'png_to_hu expects uint16 PNG values, got dtype {values.dtype}')
    hu = values.astype(np.float32)
    hu -= PNG_HU_OFFSET
    return hu


def is_channel_planar(img: np.ndarray) -> bool:
    """Whether an ``(H, W, N)`` image is a view of a C-contiguous ``(N, H, W)`` array.

    True for the N-slice inputs of :func:`assemble_slices` (``N > 1``); False for interleaved
    (C-contiguous ``(H, W, N)``) images, 2D images and single-channel images (whose two layouts
    coincide).

    Args:
        img: an image array.

    Returns:
        ``img.transpose(2, 0, 1)`` is C-contiguous and ``img`` itself is not.
    """
    return (img.ndim == 3 and not img.flags.c_contiguous
            and img.transpose(2, 0, 1).flags.c_contiguous)


def neighbour_positions(key_index: int, num_slices: int, target_interval_mm: float,
                        slice_interval_mm: float) -> np.ndarray:
    """Fractional slice indices of the ``num_slices`` inputs centred on the key slice.

    Args:
        key_index: index of the key slice (file number, or volume z index).
        num_slices: ``N``, odd, >= 1.
        target_interval_mm: wanted spacing between input channels in mm (> 0).
        slice_interval_mm: real z spacing of the series in mm (> 0).

    Returns:
        Float64 ``(N,)``, ``key_index + k * target / real`` for
        ``k = -(N // 2) .. N // 2`` (increasing).
    """
    check_num_slices(num_slices)
    for name, value in (('target_interval_mm', target_interval_mm),
                        ('slice_interval_mm', slice_interval_mm)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f'{name} must be a finite positive number of mm, got {value!r}')
    half = num_slices // 2
    steps = np.arange(-half, half + 1, dtype=np.float64)
    return float(key_index) + steps * (float(target_interval_mm) / float(slice_interval_mm))


def neighbour_sampling_plan(key_index: int, num_slices: int, target_interval_mm: float,
                            slice_interval_mm: float,
                            available_indices: Sequence[int]) -> SlicePlan:
    """Plan the linear interpolation of the ``N`` input channels from the real slices.

    Position ``p`` (see :func:`neighbour_positions`) mixes slices ``floor(p)`` and ``ceil(p)``
    with weight ``p - floor(p)`` on ``ceil(p)`` (``p`` within 1e-6 of an integer is that
    integer, weight 0). A slice index that is not in ``available_indices`` is replaced by the
    nearest available index between it and ``key_index`` (towards the key slice).

    Args:
        key_index: index of the key slice; must be in ``available_indices``.
        num_slices: ``N``, odd.
        target_interval_mm: wanted channel spacing in mm.
        slice_interval_mm: real z spacing in mm.
        available_indices: indices of the slices that can be read (any order),
            e.g. the PNG files present, or ``range(Z)`` for a volume.

    Returns:
        ``(lower, upper, upper_weight)``, each of shape ``(N,)``.
    """
    available = np.unique(np.asarray(available_indices, dtype=np.int64))
    key_index = int(key_index)
    if available.size == 0 or available[np.searchsorted(available, key_index).clip(
            max=available.size - 1)] != key_index:
        raise ValueError(f'key slice index {key_index} is not among the available slice indices')
    positions = neighbour_positions(key_index, num_slices, target_interval_mm, slice_interval_mm)
    rounded = np.rint(positions)
    on_integer = np.abs(positions - rounded) < _INTEGER_TOLERANCE
    positions = np.where(on_integer, rounded, positions)
    lower = np.floor(positions).astype(np.int64)
    upper = np.ceil(positions).astype(np.int64)
    weight = positions - lower
    lower = _fall_back_towards_key(lower, key_index, available)
    upper = _fall_back_towards_key(upper, key_index, available)
    weight = np.where(lower == upper, 0.0, weight)
    return SlicePlan(lower, upper, weight)


def _fall_back_towards_key(indices: np.ndarray, key_index: int,
                           available: np.ndarray) -> np.ndarray:
    """Replace unavailable indices by the nearest available one between them and the key.

    ``available`` is sorted, unique and contains ``key_index``.
    """
    # above the key: the largest available index <= i (>= key because key is available)
    below_or_at = available[np.searchsorted(available, indices, side='right') - 1].clip(
        min=key_index)
    # below the key: the smallest available index >= i (<= key because key is available)
    above_or_at = available[np.searchsorted(available, indices, side='left').clip(
        max=available.size - 1)].clip(max=key_index)
    return np.where(indices > key_index, below_or_at,
                    np.where(indices < key_index, above_or_at, key_index)).astype(np.int64)


def assemble_slices(plan: SlicePlan,
                    read_slice: Callable[[int], np.ndarray],
                    hu_window: Sequence[float] = DEFAULT_HU_WINDOW,
                    out_range: Sequence[float] = DEFAULT_OUT_RANGE,
                    value_offset: float = 0.0) -> np.ndarray:
    """Build the ``(H, W, N)`` input from a plan, reading each distinct slice exactly once.

    ``HU = read_slice(i) + value_offset`` (``value_offset=-32768`` for a reader that returns
    the raw DeepLesion uint16 values, ``0`` for a reader that returns HU). Each channel is the
    linear mix of its two slices on HU values, then clipped to ``hu_window`` and scaled to
    ``out_range``. The mix and the linear part of the window are one fused
    ``cv2.addWeighted`` per channel (straight from the raw dtype to float32, computed in
    double precision), written straight into its plane and clipped there (two
    ``cv2.threshold`` passes) -- the result equals mix-then-clip exactly (up to float32
    rounding).

    **Memory layout.** The result is an ``(H, W, N)`` view of a C-contiguous ``(N, H, W)``
    buffer (channel-planar, :func:`is_channel_planar`): filling whole planes avoids
    interleaving the channels, :class:`~mp3d_mmdet.datasets.transforms.SliceWiseResize`
    resizes plane by plane, and mmdet's ``PackDetInputs`` then gets its ``(N, H, W)`` tensor
    without a copy. Any other consumer sees an ordinary ``(H, W, N)`` array (OpenCV functions
    copy it to interleaved order themselves).

    Args:
        plan: from :func:`neighbour_sampling_plan`.
        read_slice: returns the ``(H, W)`` slice of an index
            (any real dtype, finite values); all slices must have the same shape.
        hu_window: HU clip window ``(low, high)``.
        out_range: output range ``(low, high)``.
        value_offset: added to the values returned by ``read_slice`` to get HU.

    Returns:
        Float32 ``(H, W, N)`` view of a C-contiguous ``(N, H, W)`` array
        (``img.transpose(2, 0, 1)`` is contiguous); channel ``c`` = plan channel ``c``.
    """
    low, scale = window_offset_and_scale(hu_window, out_range)
    # out - out_low = (HU - low) * scale = raw * scale + gamma, clipped to [0, top]
    gamma = (float(value_offset) - low) * scale
    top = float(out_range[1]) - float(out_range[0])

    raw_slices: Dict[int, np.ndarray] = {}
    shape: Optional[Tuple[int, ...]] = None

    def raw_slice(index: int) -> np.ndarray:
        nonlocal shape
        if index not in raw_slices:
            raw = np.asarray(read_slice(index))
            if raw.ndim != 2:
                raise ValueError(f'slice {index} must be a 2D (H, W) array, got shape {raw.shape}')
            if shape is None:
                shape = raw.shape
            elif raw.shape != shape:
                raise ValueError(f'slice {index} has shape {raw.shape}, the centre (key) slice '
                                 f'{shape}')
            if raw.dtype not in _CV2_DTYPES:
                raw = raw.astype(np.float32)
            if raw.dtype.kind == 'f' and not np.isfinite(raw).all():
                raise ValueError(f'slice {index} has {int((~np.isfinite(raw)).sum())} NaN or '
                                 'infinite values; CT values must be finite')
            raw_slices[index] = np.ascontiguousarray(raw)
        return raw_slices[index]

    key = raw_slice(int(plan.lower[len(plan.lower) // 2]))  # the key slice: reference shape
    planes = np.empty((len(plan.lower), ) + key.shape, np.float32)
    first_channel_of: Dict[Tuple[int, int, float], int] = {}
    for channel, (lower, upper, weight) in enumerate(
            zip(plan.lower.tolist(), plan.upper.tolist(), plan.upper_weight.tolist())):
        if lower == upper:
            weight = 0.0
        source = (lower, upper if weight else lower, weight)
        plane = planes[channel]
        if source in first_channel_of:  # e.g. fallback slices: copy, do not recompute
            np.copyto(plane, planes[first_channel_of[source]])
            continue
        first_channel_of[source] = channel
        cv2.addWeighted(raw_slice(lower), (1.0 - weight) * scale, raw_slice(source[1]),
                        weight * scale, gamma, dst=plane, dtype=cv2.CV_32F)
        # clip while the plane is hot in cache: max(x, 0) then min(x, top) (two threshold
        # passes cost half of cv2.max/cv2.min with a scalar)
        cv2.threshold(plane, 0.0, 0.0, cv2.THRESH_TOZERO, dst=plane)
        cv2.threshold(plane, top, 0.0, cv2.THRESH_TRUNC, dst=plane)
    if float(out_range[0]) != 0.0:
        planes += np.float32(out_range[0])
        # (top + out_low) can round 1 ulp past out_high in float32
        np.clip(planes, np.float32(out_range[0]), np.float32(out_range[1]), out=planes)
    return planes.transpose(1, 2, 0)


def sample_slices_from_volume(volume_hu: np.ndarray,
                              key_index: int,
                              num_slices: int,
                              target_interval_mm: float,
                              slice_interval_mm: float,
                              hu_window: Sequence[float] = DEFAULT_HU_WINDOW,
                              out_range: Sequence[float] = DEFAULT_OUT_RANGE) -> np.ndarray:
    """The ``(H, W, N)`` input centred on ``volume_hu[key_index]`` of an in-memory volume.

    Same maths as the PNG loader: slices beyond the volume ends fall back to the first/last
    slice (the "towards the key slice" rule with every slice available).

    Args:
        volume_hu: ``(Z, H, W)`` HU values (any real dtype), z = slice index.
        key_index: z index of the key slice, ``0 <= key_index < Z``.
        num_slices: ``N``, odd.
        target_interval_mm: wanted channel spacing in mm.
        slice_interval_mm: z spacing of the volume in mm.
        hu_window: HU clip window.
        out_range: output range.

    Returns:
        Float32 ``(H, W, N)``.
    """
    if volume_hu.ndim != 3:
        raise ValueError(f'volume_hu must be (Z, H, W), got shape {volume_hu.shape}')
    depth = volume_hu.shape[0]
    if not 0 <= key_index < depth:
        raise ValueError(f'key_index {key_index} outside the volume of {depth} slices')
    plan = neighbour_sampling_plan(key_index, num_slices, target_interval_mm,
                                   slice_interval_mm, np.arange(depth))
    return assemble_slices(plan, volume_hu.__getitem__, hu_window, out_range)

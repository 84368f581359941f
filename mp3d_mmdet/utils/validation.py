"""The plugin's argument checks: one function per concept, one wording everywhere.

* **Slice count** (:func:`check_num_slices`): the number ``N`` of CT slices stacked into one
  input -- an odd int >= 1, so that the key slice is the centre one. Used by the loader, the
  backbones, the slice sampling maths and the checkpoint converters.
* **Slice depths** (:func:`check_slice_depths`): the slice-axis size of each feature level
  a neck adapter fuses -- a positive int per level (the isotropic ablation pools 9 slices to
  ``[5, 3, 2, 1]``).
* **HU window** (:func:`check_hu_window`): ``(low, high)`` HU with ``low < high``, and the
  ``(low, high)`` output range it is scaled to.
* **CT spacing** (:func:`ct_spacing_problem`): a voxel spacing outside the plausible range of
  CT is almost always a unit error (metres, micrometres), a corrupt header or a typo in an
  annotation file, and would silently break the maths downstream (a slice interval of 1e-6 mm
  asks the loader for millions of slice files, one of 1e9 mm collapses every neighbour onto
  the key slice). The bounds are wide enough for every real protocol (DeepLesion: 0.18-0.98 mm
  pixels, 0.6-5 mm slice intervals; thin-slice CT 0.5 mm; old thick-slice CT 10 mm;
  downsampled research volumes several mm per pixel): in-plane pixel spacing
  :data:`PIXEL_SPACING_RANGE_MM`, slice interval :data:`SLICE_INTERVAL_RANGE_MM`.
* **Annotated box size** (:func:`box_size_problem`): a lesion box of an annotation file must
  keep a positive width and height in the precision the network computes in (float32): a
  box whose sides are positive in float64 but vanish in float32 (``w = 1e-6`` px at
  ``x = 225``) gives a zero-size target and ``loss: nan``. Sides are measured between the
  float32 corners and must be at least :data:`MIN_BOX_SIDE_PX`, which no transform of an
  image under 65,536 px can round away.

The other box checks live with the box operations (:mod:`mp3d_mmdet.structures.boxes`). Each
check
raises ``ValueError`` with one line that starts with the owner (a class or function name, or
a file and row) when one is given.
"""
import math
from numbers import Integral, Real
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'PIXEL_SPACING_RANGE_MM', 'SLICE_INTERVAL_RANGE_MM', 'check_num_slices',
    'check_slice_depths', 'check_hu_window', 'ct_spacing_problem', 'MIN_BOX_SIDE_PX',
    'box_size_problem'
]

#: Accepted in-plane pixel spacing (x and y), mm, inclusive.
PIXEL_SPACING_RANGE_MM = (0.05, 15.0)
#: Accepted slice interval (z spacing), mm, inclusive.
SLICE_INTERVAL_RANGE_MM = (0.1, 20.0)
#: Smallest side of an annotated box, pixels, measured between its float32 corners.
MIN_BOX_SIDE_PX = 0.01


def _prefix(owner: Optional[str]) -> str:
    return f'{owner}: ' if owner else ''


def _is_int(value: object) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_num_slices(value: object, name: str = 'num_slices',
                     owner: Optional[str] = None) -> int:
    """Return the slice count ``N`` of one input if it is an odd int >= 1.

    Args:
        value: the value to check (numpy integers are accepted).
        name: the argument's name in the message.
        owner: who takes the argument (e.g. ``'MP3DResNet'``), named first in the message.

    Raises:
        ValueError: e.g. ``"MP3DResNet: num_slices must be an odd int >= 1 (the key slice is
        the centre one), got 8"``; for None, that the value was never set (see
        :data:`NOT_SET_HINT`).
    """
    if value is None:
        raise ValueError(f'{_prefix(owner)}{name} is not set{NOT_SET_HINT}')
    if not _is_int(value) or int(value) < 1 or int(value) % 2 == 0:
        raise ValueError(f'{_prefix(owner)}{name} must be an odd int >= 1 (the key slice is '
                         f'the centre one), got {value!r}')
    return int(value)


#: Why a slice count can be missing where a module is built, and the fix.
NOT_SET_HINT = (': a config sets num_slices once, at its top level, and the plugin passes it on '
                'when it reads the config (the runner, the tools, '
                'mp3d_mmdet.utils.config.load_config); pass it yourself when building this '
                'module directly')


def check_slice_depths(value: Union[int, Sequence[int]], num_levels: int,
                       name: str = 'num_slices', owner: Optional[str] = None,
                       odd: bool = False) -> List[int]:
    """Return one slice-axis size per feature level (an int is used for every level).

    Args:
        value: an int, or one int per level.
        num_levels: number of feature levels.
        name: the argument's name in the message.
        owner: who takes the argument, named first in the message.
        odd: require odd sizes (an adapter that takes the centre slice).

    Raises:
        ValueError: a size that is not a positive (odd) int, or a list of another length.
    """
    if value is None:
        raise ValueError(f'{_prefix(owner)}{name} is not set{NOT_SET_HINT}')
    depths = [value] * num_levels if _is_int(value) else list(value)  # type: ignore[arg-type]
    kind = 'an odd positive int' if odd else 'a positive int'
    if len(depths) != num_levels or any(
            not _is_int(d) or int(d) < 1 or (odd and int(d) % 2 == 0) for d in depths):
        raise ValueError(f'{_prefix(owner)}{name} must be {kind} or one per level '
                         f'({num_levels}), got {value!r}')
    return [int(d) for d in depths]


def check_hu_window(hu_window: Sequence[Real], out_range: Optional[Sequence[Real]] = None,
                    owner: Optional[str] = None) -> Tuple[float, float]:
    """Return ``hu_window`` as floats if it is ``(low, high)`` with finite ``low < high``;
    the same rule for ``out_range`` when given.

    Raises:
        ValueError: e.g. ``"LoadCTSlices: hu_window must be (low, high) HU with finite
        low < high, got (400, -100)"``.
    """
    for name, pair, unit in (('hu_window', hu_window, ' HU'), ('out_range', out_range, '')):
        if pair is None:
            continue
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            low = high = math.nan
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f'{_prefix(owner)}{name} must be (low, high){unit} with finite '
                             f'low < high, got {pair!r}')
    return float(hu_window[0]), float(hu_window[1])


def _spacing_problem(value: float, name: str, bounds: Sequence[float]) -> Optional[str]:
    if not (math.isfinite(value) and bounds[0] <= value <= bounds[1]):
        return (f'{name} {value!r} mm is outside the plausible CT range {bounds[0]:g}-'
                f'{bounds[1]:g} mm (unit error or corrupt header?)')
    return None


def ct_spacing_problem(pixel_spacing: Optional[Sequence[float]] = None,
                       slice_interval: Optional[float] = None) -> Optional[str]:
    """Why a CT spacing is implausible, or None if it is within the ranges above.

    Args:
        pixel_spacing: in-plane ``(x, y)`` (or a single ``(x,)``)
            spacing in mm; None = not checked.
        slice_interval: z spacing in mm; None = not checked.

    Returns:
        str | None: e.g. ``"slice interval 1e-06 mm is outside the plausible CT range
        0.1-20 mm (unit error or corrupt header?)"``, naming the first offending value; each
        caller prefixes the file, row or argument it came from.
    """
    for axis, value in zip('xy', pixel_spacing or ()):
        problem = _spacing_problem(float(value), f'pixel spacing ({axis})',
                                   PIXEL_SPACING_RANGE_MM)
        if problem:
            return problem
    if slice_interval is not None:
        return _spacing_problem(float(slice_interval), 'slice interval', SLICE_INTERVAL_RANGE_MM)
    return None


def box_size_problem(box_xyxy: Sequence[float]) -> Optional[str]:
    """Why an annotated 0-based ``[x1, y1, x2, y2]`` box is too small for the network, or None.

    The width and height are computed as the network computes them: corners rounded to
    float32, their difference in float32; each must be at least :data:`MIN_BOX_SIDE_PX`.

    Args:
        box_xyxy: ``(4,)`` 0-based ``[x1, y1, x2, y2]`` in pixels, finite.

    Returns:
        str | None: e.g. ``"a box of positive width and height (sides of at least 0.01 px
        between float32 corners, the network's precision), got width 0 and height 21.96"``;
        each caller prefixes the file, row or record and how the box is written there.
    """
    x1, y1, x2, y2 = np.asarray(box_xyxy, dtype=np.float32)
    width, height = x2 - x1, y2 - y1
    if min(width, height) >= np.float32(MIN_BOX_SIDE_PX):
        return None
    return (f'a box of positive width and height (sides of at least {MIN_BOX_SIDE_PX:g} px '
            "between float32 corners, the network's precision), got width "
            f'{float(width):.7g} and height {float(height):.7g}')

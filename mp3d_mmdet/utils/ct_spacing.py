"""The plausible range of CT voxel spacings, checked wherever a spacing enters the plugin.

A spacing outside these bounds is almost always a unit error (metres, micrometres), a
corrupt header or a typo in an annotation file, and would silently break the maths
downstream: a slice interval of 1e-6 mm asks the N-slice loader for millions of slice files,
one of 1e9 mm collapses every neighbour onto the key slice. The bounds are wide enough for
every real protocol (DeepLesion: 0.18-0.98 mm pixels, 0.6-5 mm slice intervals; thin-slice
CT 0.5 mm; old thick-slice CT 10 mm; downsampled research volumes several mm per pixel):

* in-plane pixel spacing (x, y): 0.05 to 15 mm;
* slice interval (z): 0.1 to 20 mm.

:func:`ct_spacing_problem` returns the one-line reason a spacing is refused (or None); each
caller prefixes the file, row or argument it came from.
"""
import math
from typing import Optional, Sequence

__all__ = ['PIXEL_SPACING_RANGE_MM', 'SLICE_INTERVAL_RANGE_MM', 'ct_spacing_problem']

#: Accepted in-plane pixel spacing (x and y), mm, inclusive.
PIXEL_SPACING_RANGE_MM = (0.05, 15.0)
#: Accepted slice interval (z spacing), mm, inclusive.
SLICE_INTERVAL_RANGE_MM = (0.1, 20.0)


def _problem(value: float, name: str, bounds: Sequence[float]) -> Optional[str]:
    if not (math.isfinite(value) and bounds[0] <= value <= bounds[1]):
        return (f'{name} {value!r} mm is outside the plausible CT range {bounds[0]:g}-'
                f'{bounds[1]:g} mm (unit error or corrupt header?)')
    return None


def ct_spacing_problem(pixel_spacing: Optional[Sequence[float]] = None,
                       slice_interval: Optional[float] = None) -> Optional[str]:
    """Why a CT spacing is implausible, or None if it is within the ranges above.

    Args:
        pixel_spacing (Sequence[float] | None): in-plane ``(x, y)`` (or a single ``(x,)``)
            spacing in mm; None = not checked.
        slice_interval (float | None): z spacing in mm; None = not checked.

    Returns:
        str | None: e.g. ``"slice interval 1e-06 mm is outside the plausible CT range
        0.1-20 mm (unit error or corrupt header?)"``, naming the first offending value.
    """
    for axis, value in zip('xy', pixel_spacing or ()):
        problem = _problem(float(value), f'pixel spacing ({axis})', PIXEL_SPACING_RANGE_MM)
        if problem:
            return problem
    if slice_interval is not None:
        return _problem(float(slice_interval), 'slice interval', SLICE_INTERVAL_RANGE_MM)
    return None

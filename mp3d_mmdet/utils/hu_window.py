"""HU windowing: the linear map from Hounsfield units to network input or display values.

One rule for every user: the slice loader and the volume detector scale CT slices into the
network's input range with :func:`clip_and_scale_hu`; the overlays and the HTML report map
HU to 8-bit grey with :func:`window_hu` through a display window.
"""
from typing import Sequence, Tuple

import numpy as np

from .validation import check_hu_window

__all__ = ['DEFAULT_HU_WINDOW', 'DEFAULT_OUT_RANGE', 'SOFT_TISSUE_WINDOW',
           'window_offset_and_scale', 'clip_and_scale_hu', 'window_hu']

#: HU window of the paper (clip range before scaling).
DEFAULT_HU_WINDOW = (-1024.0, 1050.0)
#: Output intensity range: ``hu_window[0] -> out_range[0]``, ``hu_window[1] -> out_range[1]``.
DEFAULT_OUT_RANGE = (0.0, 255.0)
#: Display window (HU) for soft tissue: level 40, width 400.
SOFT_TISSUE_WINDOW: Tuple[float, float] = (-160.0, 240.0)


def window_offset_and_scale(hu_window: Sequence[float],
                            out_range: Sequence[float]) -> Tuple[float, float]:
    """``(low, scale)`` of the linear map ``hu -> (hu - low) * scale + out_range[0]``."""
    low, high = check_hu_window(hu_window, out_range)
    return low, (float(out_range[1]) - float(out_range[0])) / (high - low)


def clip_and_scale_hu(hu: np.ndarray,
                      hu_window: Sequence[float] = DEFAULT_HU_WINDOW,
                      out_range: Sequence[float] = DEFAULT_OUT_RANGE) -> np.ndarray:
    """Clip HU values to ``hu_window`` and map the window linearly onto ``out_range``.

    ``hu_window[0]`` (and anything below) -> ``out_range[0]``, ``hu_window[1]`` (and anything
    above) -> ``out_range[1]``. With the defaults: -1024 HU -> 0.0, 1050 HU -> 255.0.

    Args:
        hu: HU values, any shape, any real dtype.
        hu_window: ``(low, high)`` HU, ``high > low``.
        out_range: ``(low, high)`` output values, ``high > low``.

    Returns:
        Float32 array of the shape of ``hu``, values in ``out_range``.
    """
    low, scale = window_offset_and_scale(hu_window, out_range)
    out = np.asarray(hu, dtype=np.float32) - np.float32(low)
    out *= np.float32(scale)
    out += np.float32(out_range[0])
    np.clip(out, out_range[0], out_range[1], out=out)
    return out


def window_hu(hu: np.ndarray, window: Tuple[float, float] = SOFT_TISSUE_WINDOW) -> np.ndarray:
    """Map a slice in HU to an 8-bit grey image through a display window.

    Args:
        hu: ``(H, W)`` array in Hounsfield units.
        window: ``(low, high)`` HU mapped to 0 and 255 (values outside are clipped).

    Returns:
        ``(H, W)`` uint8 image.
    """
    return clip_and_scale_hu(hu, window, (0.0, 255.0)).astype(np.uint8)

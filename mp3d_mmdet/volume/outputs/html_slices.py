"""The slice pictures of the HTML report: HU coded to 8 bits for windowing in the browser.

**Display code.** Each axial slice is stored as an 8-bit grey JPEG whose grey level is not a
window but a *code* for the HU value: the piecewise-linear, increasing map
:data:`DISPLAY_CODE_KNOTS` ``(HU, code)`` = ``(-1024, 0), (-160, 56), (240, 216),
(1500, 255)`` (values outside [-1024, 1500] HU are clipped). One code step is

* 15.4 HU from -1024 to -160 HU (air, lung, fat),
* 2.5 HU from -160 to 240 HU (soft tissue and brain, where windows are narrow),
* 32.3 HU from 240 to 1500 HU (contrast, bone);

the JPEG adds an error of about 1 code on average and a few codes at sharp edges (the
report is a review aid, not a diagnostic display). The page turns codes back to HU with
:func:`display_code_hu` (256 values, the centre of each code's HU interval) and applies the
chosen window ``(centre, width)`` with a 256-entry look-up table on the decoded pixels
(canvas ``getImageData``), so any window can be shown: :data:`WINDOW_PRESETS` and the
input's own DICOM ``WindowCenter``/``WindowWidth``. A brain window (W 80) thus shows 32
distinct grey levels, soft tissue (W 400) 160, lung (W 1500) and bone (W 1800) all codes of
their range.

**Size rule.** Slices keep their resolution up to :data:`MAX_SLICE_SIDE` = 512 px on the
longer side (larger ones are shrunk by area averaging, never enlarged) and are encoded as
baseline JPEG with optimised Huffman tables at the highest quality of
:data:`JPEG_QUALITIES` whose slices average at most :data:`SLICE_BUDGET` = 25,000 base64
characters (measured on up to 12 evenly spaced slices, then checked on all of them and
lowered while over budget). A 300-slice scan's pictures are thus at most 7.5 MB, and its
report under 8 MB; a 512 x 512 chest-like slice takes about 20-26 kB at quality 85-90.
"""
import base64
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...utils.hu_window import SOFT_TISSUE_WINDOW

__all__ = ['DISPLAY_CODE_KNOTS', 'WINDOW_PRESETS', 'MAX_SLICE_SIDE', 'JPEG_QUALITIES',
           'SLICE_BUDGET', 'ReportSlices', 'hu_to_display_code', 'display_code_hu',
           'encode_report_slices']

#: ``(HU, code)`` knots of the piecewise-linear HU -> 8-bit code map (module docstring).
DISPLAY_CODE_KNOTS: Tuple[Tuple[float, int], ...] = ((-1024.0, 0), (-160.0, 56), (240.0, 216),
                                                     (1500.0, 255))
#: Display windows ``name -> (centre, width)`` HU offered by the report, first = initial.
WINDOW_PRESETS: Dict[str, Tuple[float, float]] = {
    'soft tissue': ((SOFT_TISSUE_WINDOW[0] + SOFT_TISSUE_WINDOW[1]) / 2,
                    SOFT_TISSUE_WINDOW[1] - SOFT_TISSUE_WINDOW[0]),
    'lung': (-600.0, 1500.0),
    'bone': (400.0, 1800.0),
    'brain': (40.0, 80.0),
}
#: Longest side (px) of an embedded slice image; larger slices are shrunk (area averaging).
MAX_SLICE_SIDE = 512
#: JPEG qualities tried, best first (module docstring's size rule).
JPEG_QUALITIES: Tuple[int, ...] = (90, 85, 80, 75, 70, 60, 50, 40)
#: Average base64 characters per slice allowed (300 slices: 7.5 MB).
SLICE_BUDGET = 25_000
_SAMPLE_SLICES = 12


@dataclass(frozen=True)
class ReportSlices:
    """The encoded slices of one volume.

    Attributes:
        images: ``Z`` base64 JPEGs (no ``data:`` prefix), slice ``z`` at ``z``.
        quality: the JPEG quality used.
        size: ``(width, height)`` px of every image.
    """
    images: List[str]
    quality: int
    size: Tuple[int, int]

    @property
    def num_chars(self) -> int:
        """Base64 characters of all the images together."""
        return sum(len(image) for image in self.images)


def hu_to_display_code(hu: np.ndarray) -> np.ndarray:
    """HU -> 8-bit display codes (:data:`DISPLAY_CODE_KNOTS`), any shape -> uint8, same shape."""
    knots = np.asarray(DISPLAY_CODE_KNOTS, np.float64)
    return np.rint(np.interp(np.asarray(hu, np.float64), knots[:, 0], knots[:, 1])) \
        .astype(np.uint8)


def display_code_hu() -> np.ndarray:
    """``(256,)`` float64: the HU each code stands for (the centre of its HU interval)."""
    knots = np.asarray(DISPLAY_CODE_KNOTS, np.float64)
    return np.interp(np.arange(256, dtype=np.float64), knots[:, 1], knots[:, 0])


def _encode(codes: np.ndarray, quality: int) -> str:
    ok, data = cv2.imencode('.jpg', codes, [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                            cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise OSError('could not encode a slice as JPEG')
    return base64.b64encode(data.tobytes()).decode('ascii')


def encode_report_slices(hu: np.ndarray, max_side: int = MAX_SLICE_SIDE,
                         qualities: Sequence[int] = JPEG_QUALITIES,
                         budget: Optional[int] = SLICE_BUDGET) -> ReportSlices:
    """Code every axial slice and encode it as a base64 grey JPEG (module docstring).

    Args:
        hu: ``(Z, Y, X)`` HU.
        max_side: the longer side of an encoded slice is at most this (px).
        qualities: JPEG qualities to try, best first.
        budget: average base64 characters per slice allowed; None = the first quality.

    Returns:
        The ``Z`` images, the quality chosen and the image size.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3 or 0 in hu.shape:
        raise ValueError(f'hu must be a non-empty (Z, Y, X) volume, got shape {hu.shape}')
    if not qualities:
        raise ValueError('qualities must name at least one JPEG quality')
    height, width = hu.shape[1:]
    factor = min(1.0, max_side / max(height, width))
    size = (max(1, int(round(width * factor))), max(1, int(round(height * factor))))
    codes = []
    for z in range(hu.shape[0]):
        code = hu_to_display_code(hu[z])
        codes.append(cv2.resize(code, size, interpolation=cv2.INTER_AREA) if factor < 1.0
                     else code)
    sample = np.unique(np.linspace(0, len(codes) - 1, _SAMPLE_SLICES).round().astype(int))
    qualities = list(qualities)
    if budget is not None:
        while len(qualities) > 1 and np.mean([len(_encode(codes[z], qualities[0]))
                                              for z in sample]) > budget:
            qualities.pop(0)
    while True:
        images = [_encode(code, qualities[0]) for code in codes]
        if budget is None or len(qualities) == 1 or \
                sum(len(i) for i in images) <= budget * len(images):
            return ReportSlices(images, int(qualities[0]), size)
        qualities.pop(0)

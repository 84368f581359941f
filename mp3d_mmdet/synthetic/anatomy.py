"""The anatomy of a synthetic CT series (HU): a phantom that varies smoothly with z and is
rendered slice by slice, and the regions lesions are placed in.

Air (-1000) outside an elliptical body; subcutaneous fat (-100); muscle wall (45); visceral
soft tissue (30 +- a smooth texture); above a per-patient diaphragm level: lungs (-850) and a
mediastinum (40); below it: liver (60) and kidneys (130); the spine (cortical 700 / cancellous
250 HU vertebral bodies alternating with 80 HU discs along z, spinal canal 20 HU); ribs
(600 HU) in the chest; Gaussian noise (sigma 12 HU).
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .shapes import Blob, Ellipse

__all__ = ['Region', 'REGIONS', 'GENERIC_REGIONS', 'NOISE_SIGMA_HU', 'SeriesPhantom']


@dataclass(frozen=True)
class Region:
    """What a lesion inherits from the region it sits in.

    ``lesion_type`` is DeepLesion's coarse lesion type, ``base_hu`` the tissue HU a lesion's
    contrast is relative to (lung nodules: soft tissue), ``generic`` marks the soft tissue
    outside the organs, where a lesion may span several such regions.
    """
    lesion_type: int
    base_hu: float
    generic: bool


#: Every region a lesion or vessel may be placed in.
REGIONS: Dict[str, Region] = {
    'liver': Region(lesion_type=4, base_hu=60.0, generic=False),
    'lung': Region(lesion_type=5, base_hu=40.0, generic=False),
    'kidney': Region(lesion_type=6, base_hu=130.0, generic=False),
    'mediastinum': Region(lesion_type=3, base_hu=40.0, generic=True),
    'body_wall': Region(lesion_type=7, base_hu=45.0, generic=True),
    'abdomen': Region(lesion_type=2, base_hu=30.0, generic=True),
}
#: The generic soft-tissue regions.
GENERIC_REGIONS = tuple(name for name, region in REGIONS.items() if region.generic)
#: Standard deviation of the Gaussian noise added to every slice.
NOISE_SIGMA_HU = 12.0
_NUM_RIBS = 10


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class SeriesPhantom:
    """Anatomy of one CT series as a function of z (mm), rendered slice by slice.

    Args:
        rng: draws the body's size and position, the diaphragm level, the phases of the
            spine and rib patterns and the tissue texture.
        size: image width = height in px.
        spacing: pixel spacing in mm.
        depth_mm: z extent of the series in mm.
    """

    def __init__(self, rng: np.random.Generator, size: int, spacing: float,
                 depth_mm: float) -> None:
        self.size = size
        self.spacing = spacing
        fov = size * spacing
        centre = (size - 1) / 2.0 * spacing
        self.body = Ellipse(centre + rng.uniform(-0.02, 0.02) * fov,
                            centre + rng.uniform(-0.02, 0.04) * fov,
                            min(rng.uniform(150.0, 185.0), 0.46 * fov),
                            min(rng.uniform(100.0, 125.0), 0.34 * fov))
        self.body_phase = rng.uniform(0.0, 2.0 * math.pi)
        self.diaphragm_z = rng.uniform(0.35, 0.65) * depth_mm
        self.disc_phase = rng.uniform(0.0, 30.0)
        self.rib_phases = rng.uniform(0.0, 25.0, size=_NUM_RIBS)
        self.texture = self._texture(rng)

    def _texture(self, rng: np.random.Generator) -> np.ndarray:
        """Smooth texture of the visceral tissue, ``(size, size)`` float32: a sum of random
        low-frequency cosines."""
        grid = np.arange(self.size, dtype=np.float32) * np.float32(self.spacing)
        texture = np.zeros((self.size, self.size), np.float32)
        for _ in range(4):
            kx, ky = rng.uniform(-1.0, 1.0, size=2) * (2.0 * math.pi / 60.0)
            phase = rng.uniform(0.0, 2.0 * math.pi)
            texture += np.cos(np.float32(ky) * grid[:, None] + np.float32(kx) * grid[None, :]
                              + np.float32(phase))
        return texture * np.float32(8.0 / 4.0)

    # ------------------------------------------------------------ geometry per z
    def body_at(self, z: float) -> Ellipse:
        """The body outline at ``z``."""
        f = 1.0 + 0.04 * math.sin(2.0 * math.pi * z / 300.0 + self.body_phase)
        return Ellipse(self.body.cx, self.body.cy, self.body.ax * f, self.body.ay * f)

    def chest_factor(self, z: float) -> float:
        """0 below the diaphragm, rising smoothly to 1 within 30 mm above it."""
        return _smoothstep((z - self.diaphragm_z) / 30.0)

    def organs_at(self, z: float) -> List[Tuple[str, Ellipse, float]]:
        """``(region, ellipse, HU)`` of the organs at ``z`` in painting order."""
        body = self.body_at(z)
        organs = []
        chest = self.chest_factor(z)
        if chest > 0.05:
            for side in (-1.0, 1.0):
                organs.append(('lung', Ellipse(body.cx + side * 0.42 * body.ax,
                                               body.cy - 0.05 * body.ay,
                                               0.34 * body.ax * chest, 0.68 * body.ay * chest),
                               -850.0))
            organs.append(('mediastinum', Ellipse(body.cx, body.cy - 0.25 * body.ay,
                                                  0.2 * body.ax, 0.4 * body.ay * chest), 40.0))
        liver = 1.0 - _smoothstep((z - self.diaphragm_z - 20.0) / 30.0)
        if liver > 0.05:
            organs.append(('liver', Ellipse(body.cx - 0.38 * body.ax, body.cy - 0.05 * body.ay,
                                            0.45 * body.ax * liver, 0.6 * body.ay * liver,
                                            0.3), 60.0))
        kidney = (_smoothstep((z - self.diaphragm_z + 140.0) / 20.0)
                  * (1.0 - _smoothstep((z - self.diaphragm_z + 30.0) / 20.0)))
        if kidney > 0.05:
            for side in (-1.0, 1.0):
                organs.append(('kidney', Ellipse(body.cx + side * 0.42 * body.ax,
                                                 body.cy + 0.35 * body.ay,
                                                 0.12 * body.ax * kidney,
                                                 0.2 * body.ay * kidney, side * 0.5), 130.0))
        return organs

    def spine_at(self, z: float) -> Tuple[Ellipse, Ellipse]:
        """The vertebral body and the spinal canal at ``z``."""
        body = self.body_at(z)
        vertebra = Ellipse(body.cx, body.cy + 0.62 * body.ay - 18.0, 19.0, 16.0)
        canal = Ellipse(body.cx, vertebra.cy + 16.0 + 11.0, 8.0, 7.0)
        return vertebra, canal

    def region_of(self, x: float, y: float, z: float, organ_scale: float = 1.0) -> Optional[str]:
        """Region of a point, None where no lesion may be placed (outside 0.8 x the body
        ellipse, on the spine). Organs are tested at ``organ_scale`` x their ellipse."""
        body = self.body_at(z)
        if not body.contains(x, y, 0.8):
            return None
        vertebra, canal = self.spine_at(z)
        for structure in (vertebra, canal):
            if structure.contains(x, y, 1.6):
                return None
        region = 'body_wall' if not body.contains(x, y, 0.7) else 'abdomen'
        for name, ellipse, _ in self.organs_at(z):
            if ellipse.contains(x, y, organ_scale):
                region = name
        if region == 'abdomen' and self.chest_factor(z) > 0.5:
            region = 'mediastinum'
        return region

    # ------------------------------------------------------------ rendering
    def render(self, z: float, blobs: Sequence[Blob], noise_rng: np.random.Generator
               ) -> np.ndarray:
        """HU image ``(size, size)`` float32 of the slice at ``z`` mm: the anatomy, the
        ``blobs`` on top, then the noise drawn from ``noise_rng``."""
        img = np.full((self.size, self.size), -1000.0, np.float32)
        self._paint_body(img, z)
        for _, ellipse, hu in self.organs_at(z):
            self._paint(img, ellipse, hu, 1.5)
        self._paint_spine(img, z)
        self._paint_ribs(img, z)
        for blob in blobs:
            section = blob.cross_section(z)
            if section is not None:
                ellipse, rz2 = section
                self._paint(img, ellipse, blob.target_hu, blob.edge_mm, rz2)
        img += noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(
            NOISE_SIGMA_HU)
        return img

    def _paint_body(self, img: np.ndarray, z: float) -> None:
        """Fat, muscle wall and textured visceral tissue inside the body outline."""
        body = self.body_at(z)
        body_alpha = self._paint(img, body, -100.0, 1.0, return_alpha=True)
        self._paint(img, Ellipse(body.cx, body.cy, body.ax - 12.0, body.ay - 12.0), 45.0, 1.0)
        self._paint(img, Ellipse(body.cx, body.cy, body.ax - 22.0, body.ay - 22.0), 30.0, 2.0)
        img += self.texture * body_alpha

    def _paint_spine(self, img: np.ndarray, z: float) -> None:
        """A vertebral body (cortical shell and cancellous core) or a disc, and the canal."""
        vertebra, canal = self.spine_at(z)
        disc = math.cos(2.0 * math.pi * (z + self.disc_phase) / 30.0) > 0.8
        self._paint(img, vertebra, 80.0 if disc else 700.0, 0.8)
        if not disc:
            self._paint(img, Ellipse(vertebra.cx, vertebra.cy, vertebra.ax - 2.5,
                                     vertebra.ay - 2.5), 250.0, 0.8)
        self._paint(img, canal, 20.0, 0.8)

    def _paint_ribs(self, img: np.ndarray, z: float) -> None:
        """The ribs cut by slice ``z``, around the body outline in the chest."""
        if self.chest_factor(z) <= 0.2:
            return
        body = self.body_at(z)
        for i in range(_NUM_RIBS):
            if math.cos(2.0 * math.pi * (z + self.rib_phases[i]) / 25.0) <= 0.0:
                continue
            angle = math.pi * (0.1 + 0.8 * i / (_NUM_RIBS - 1)) + math.pi
            angle = angle if i % 2 == 0 else angle - math.pi
            rib = Ellipse(body.cx + 0.9 * body.ax * math.cos(angle),
                          body.cy + 0.9 * body.ay * math.sin(angle), 5.0, 4.0)
            self._paint(img, rib, 600.0, 0.8)

    def _paint(self, img: np.ndarray, ellipse: Ellipse, value: float, edge_mm: float,
               rz2: float = 0.0, return_alpha: bool = False) -> Optional[np.ndarray]:
        """Blend ``value`` into ``img`` (HU, ``(size, size)``) inside a soft-edged ellipse
        (linear alpha ramp of width ~``2 * edge_mm`` across the border, ``rz2`` = the
        ``(dz / semi_z)^2`` term of an ellipsoid); optionally return the full-size alpha map."""
        s = self.spacing
        reach = max(ellipse.ax, ellipse.ay) + edge_mm
        c0 = max(0, int(math.floor((ellipse.cx - reach) / s)))
        c1 = min(self.size, int(math.ceil((ellipse.cx + reach) / s)) + 1)
        r0 = max(0, int(math.floor((ellipse.cy - reach) / s)))
        r1 = min(self.size, int(math.ceil((ellipse.cy + reach) / s)) + 1)
        if c1 <= c0 or r1 <= r0:
            return np.zeros_like(img) if return_alpha else None
        xs = (np.arange(c0, c1, dtype=np.float32) * np.float32(s) - np.float32(ellipse.cx))
        ys = (np.arange(r0, r1, dtype=np.float32) * np.float32(s) - np.float32(ellipse.cy))
        cos_t, sin_t = np.float32(math.cos(ellipse.theta)), np.float32(math.sin(ellipse.theta))
        u = (xs[None, :] * cos_t + ys[:, None] * sin_t) / np.float32(ellipse.ax)
        v = (ys[:, None] * cos_t - xs[None, :] * sin_t) / np.float32(ellipse.ay)
        r = np.sqrt(u * u + v * v + np.float32(rz2))
        alpha = (r - np.float32(1.0)) * np.float32(
            -min(ellipse.ax, ellipse.ay) / (2.0 * edge_mm))
        alpha += np.float32(0.5)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        window = img[r0:r1, c0:c1]
        window += alpha * (np.float32(value) - window)
        if not return_alpha:
            return None
        if (r0, r1, c0, c1) == (0, self.size, 0, self.size):
            return alpha
        full = np.zeros_like(img)
        full[r0:r1, c0:c1] = alpha
        return full

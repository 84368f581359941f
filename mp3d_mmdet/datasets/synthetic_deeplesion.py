"""Synthetic data in the exact layout of the DeepLesion release (for the demo and the tests).

:func:`make_synthetic_deeplesion` writes::

    <out_dir>/DL_info.csv                                   all 18 official columns/formats
    <out_dir>/Images_png/<patient:06d>_<study:02d>_<series:02d>/<slice:03d>.png
                                                            uint16, value = HU + 32768

What is in it:

* **Anatomy** (HU): air (-1000) outside an elliptical body; subcutaneous fat (-100); muscle
  wall (45); visceral soft tissue (30 +- a smooth texture); above a per-patient diaphragm
  level: lungs (-850) and a mediastinum (40); below it: liver (60) and kidneys (130); the
  spine (cortical 700 / cancellous 250 HU vertebral bodies alternating with 80 HU discs along
  z, spinal canal 20 HU); ribs (600 HU) in the chest; Gaussian noise (sigma 12 HU). Every
  structure varies smoothly with z.
* **Lesions**: 3D ellipsoids with soft edges (linear ramp ~1-2 mm), long diameter
  log-uniform in ``lesion_diameter_mm`` (default 5..40 mm), short/long 0.55..1, z extent
  0.6..1.1 x the long diameter, random in-plane orientation; hypo-dense (-25..-70 HU) or
  hyper-dense (+30..+120 HU) relative to the tissue they sit in (lung nodules are relative
  to soft tissue). Each lesion is annotated on its central (largest) slice with RECIST
  endpoints, diameters and a box = RECIST extent padded by 4 mm (5 px at the release's
  ~0.8 mm/px, capped at 5 px), all 1-based as in the release.
* **Confounders** ("vessels"): tubes along z (slight tilt) whose cross-section is drawn from
  the *same* size, contrast, edge and position distributions as the lesions -- in a single
  slice a vessel looks exactly like a lesion, but it runs through every slice, so only the
  3D context tells them apart. 3..6 per series by default (``vessels_per_series``; fewer
  where a vessel stood in a lesion's way), optionally with a smaller maximum diameter
  (``vessel_max_diameter_mm``).
* **Series mix**: slice intervals 1, 2.5 and 5 mm (every value used once num_series >= 3),
  field of view 340..420 mm on ``image_size`` px, except one series of
  ``round(1.5 * image_size)`` px (768 for the default 512); some patients have a second
  study; one key slice carries two lesions; a few rows are ``Possibly_noisy`` (at least
  one whenever possible; never all rows of a split). Coarse lesion types follow the organ
  (liver 4, lung 5, kidney 6, mediastinum 3, body wall 7, other abdomen 2) and, as in the
  release, are -1 (unknown) in the train split.
* **Stored slices**: like the release, only a window of slices around every key slice is
  written (``Slice_range``; half width 12.5..30 mm, or 4..9 mm for about one key slice in
  five so that the loader's missing-neighbour fallback is exercised; clipped to the volume).
* **Splits** by patient: 70 / 15 / 15 % with at least one patient in each.

Deterministic for a seed: the same arguments give byte-identical files. Besides the release's
``DL_info.csv`` and ``Images_png/``, the folder gets ``lesions_3d.pkl``, the 3D ground truth
of every sub-volume (run of consecutive stored slices) in the format of DeepLesion's manual 3D
test set (:mod:`~mp3d_mmdet.datasets.lesions_3d`; all three splits, every lesion whose core
-- the ellipsoid without its soft edge -- reaches a stored slice, boxed on the slices and
pixels it covers; vessels excluded), and ``synthetic_recipe.json``
(:func:`synthetic_recipe`: the arguments and the generator's source digest), written last, so
that a complete folder of the wanted data can be recognised and reused
(``mp3d-make-synthetic-deeplesion --reuse``).
"""
import hashlib
import inspect
import json
import math
import os
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.safe_files import atomic_write
from .dl_info import (SPLIT_NAMES, DLInfoRow, consecutive_runs, series_folder_name,
                      slice_file_name, subvolume_name, write_dl_info)
from .lesions_3d import write_lens_annotations
from .slice_sampling import PNG_HU_OFFSET

__all__ = ['make_synthetic_deeplesion', 'synthetic_recipe', 'read_synthetic_recipe',
           'RECIPE_FILE', 'LESIONS_3D_FILE', 'GENERATED_ENTRIES']

#: Written last into every generated folder: the arguments and the generator's source digest.
RECIPE_FILE = 'synthetic_recipe.json'
#: The 3D ground truth of every sub-volume, in the format of the manual 3D test set.
LESIONS_3D_FILE = 'lesions_3d.pkl'
#: Everything the generator writes into its output folder.
GENERATED_ENTRIES = ('DL_info.csv', 'Images_png', LESIONS_3D_FILE, RECIPE_FILE)

_SLICE_INTERVALS_MM = (1.0, 2.5, 5.0)
_LESION_TYPE_OF_REGION = {
    'liver': 4, 'lung': 5, 'kidney': 6, 'mediastinum': 3, 'body_wall': 7, 'abdomen': 2
}
_BASE_HU_OF_REGION = {  # tissue a lesion's contrast is relative to
    'liver': 60.0, 'lung': 40.0, 'kidney': 130.0, 'mediastinum': 40.0, 'body_wall': 45.0,
    'abdomen': 30.0
}
_GENERIC_REGIONS = ('abdomen', 'body_wall', 'mediastinum')
_NOISE_SIGMA_HU = 12.0
_BOX_PADDING_MM = 4.0
_BOX_PADDING_MAX_PX = 5.0


@dataclass
class _Ellipse:
    """In-plane ellipse, centre/axes in mm (x = column * spacing, y = row * spacing)."""
    cx: float
    cy: float
    ax: float
    ay: float
    theta: float = 0.0

    def contains(self, x: float, y: float, scale: float = 1.0) -> bool:
        c, s = math.cos(self.theta), math.sin(self.theta)
        u = (x - self.cx) * c + (y - self.cy) * s
        v = -(x - self.cx) * s + (y - self.cy) * c
        return (u / (self.ax * scale))**2 + (v / (self.ay * scale))**2 < 1.0


@dataclass
class _Blob:
    """A lesion (ellipsoid, ``semi_z`` finite) or a vessel (tube along z, ``semi_z`` = inf)."""
    cx: float
    cy: float
    cz: float
    semi_x: float
    semi_y: float
    semi_z: float
    theta: float
    target_hu: float
    edge_mm: float
    tilt_x: float = 0.0  # mm of in-plane shift per mm of z (vessels)
    tilt_y: float = 0.0
    region: str = 'abdomen'

    def cross_section(self, z: float) -> Optional[Tuple[_Ellipse, float]]:
        """The ellipse and the ``(dz / semi_z)^2`` term at slice ``z``; None if absent."""
        if math.isinf(self.semi_z):
            return _Ellipse(self.cx + self.tilt_x * (z - self.cz),
                            self.cy + self.tilt_y * (z - self.cz), self.semi_x, self.semi_y,
                            self.theta), 0.0
        rz2 = ((z - self.cz) / self.semi_z)**2
        # the painted ramp reaches alpha = 0 at r = 1 + edge / min(semi_x, semi_y)
        reach = 1.0 + self.edge_mm / min(self.semi_x, self.semi_y)
        if rz2 >= reach**2:
            return None
        return _Ellipse(self.cx, self.cy, self.semi_x, self.semi_y, self.theta), rz2


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class _SeriesPhantom:
    """Anatomy of one CT series as a function of z (mm), rendered slice by slice."""

    def __init__(self, rng: np.random.Generator, size: int, spacing: float,
                 depth_mm: float) -> None:
        self.size = size
        self.spacing = spacing
        fov = size * spacing
        centre = (size - 1) / 2.0 * spacing
        self.body = _Ellipse(centre + rng.uniform(-0.02, 0.02) * fov,
                             centre + rng.uniform(-0.02, 0.04) * fov,
                             min(rng.uniform(150.0, 185.0), 0.46 * fov),
                             min(rng.uniform(100.0, 125.0), 0.34 * fov))
        self.body_phase = rng.uniform(0.0, 2.0 * math.pi)
        self.diaphragm_z = rng.uniform(0.35, 0.65) * depth_mm
        self.disc_phase = rng.uniform(0.0, 30.0)
        self.num_ribs = 10
        self.rib_phases = rng.uniform(0.0, 25.0, size=self.num_ribs)
        # smooth texture of the visceral tissue: a sum of random low-frequency cosines
        grid = np.arange(size, dtype=np.float32) * np.float32(spacing)
        texture = np.zeros((size, size), np.float32)
        for _ in range(4):
            kx, ky = rng.uniform(-1.0, 1.0, size=2) * (2.0 * math.pi / 60.0)
            phase = rng.uniform(0.0, 2.0 * math.pi)
            texture += np.cos(np.float32(ky) * grid[:, None] + np.float32(kx) * grid[None, :]
                              + np.float32(phase))
        self.texture = texture * np.float32(8.0 / 4.0)

    # ------------------------------------------------------------ geometry per z
    def body_at(self, z: float) -> _Ellipse:
        f = 1.0 + 0.04 * math.sin(2.0 * math.pi * z / 300.0 + self.body_phase)
        return _Ellipse(self.body.cx, self.body.cy, self.body.ax * f, self.body.ay * f)

    def chest_factor(self, z: float) -> float:
        return _smoothstep((z - self.diaphragm_z) / 30.0)

    def organs_at(self, z: float) -> List[Tuple[str, _Ellipse, float]]:
        """``(region, ellipse, HU)`` of the organs at ``z`` in painting order."""
        body = self.body_at(z)
        organs = []
        chest = self.chest_factor(z)
        if chest > 0.05:
            for side in (-1.0, 1.0):
                organs.append(('lung', _Ellipse(body.cx + side * 0.42 * body.ax,
                                                body.cy - 0.05 * body.ay,
                                                0.34 * body.ax * chest, 0.68 * body.ay * chest),
                               -850.0))
            organs.append(('mediastinum', _Ellipse(body.cx, body.cy - 0.25 * body.ay,
                                                   0.2 * body.ax, 0.4 * body.ay * chest), 40.0))
        liver = 1.0 - _smoothstep((z - self.diaphragm_z - 20.0) / 30.0)
        if liver > 0.05:
            organs.append(('liver', _Ellipse(body.cx - 0.38 * body.ax, body.cy - 0.05 * body.ay,
                                             0.45 * body.ax * liver, 0.6 * body.ay * liver,
                                             0.3), 60.0))
        kidney = (_smoothstep((z - self.diaphragm_z + 140.0) / 20.0)
                  * (1.0 - _smoothstep((z - self.diaphragm_z + 30.0) / 20.0)))
        if kidney > 0.05:
            for side in (-1.0, 1.0):
                organs.append(('kidney', _Ellipse(body.cx + side * 0.42 * body.ax,
                                                  body.cy + 0.35 * body.ay,
                                                  0.12 * body.ax * kidney,
                                                  0.2 * body.ay * kidney, side * 0.5), 130.0))
        return organs

    def spine_at(self, z: float) -> Tuple[_Ellipse, _Ellipse]:
        body = self.body_at(z)
        vertebra = _Ellipse(body.cx, body.cy + 0.62 * body.ay - 18.0, 19.0, 16.0)
        canal = _Ellipse(body.cx, vertebra.cy + 16.0 + 11.0, 8.0, 7.0)
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
    def render(self, z: float, blobs: Sequence[_Blob], noise_rng: np.random.Generator
               ) -> np.ndarray:
        """HU image ``(size, size)`` float32 of the slice at ``z`` mm."""
        img = np.full((self.size, self.size), -1000.0, np.float32)
        body = self.body_at(z)
        body_alpha = self._paint(img, body, -100.0, 1.0, return_alpha=True)
        self._paint(img, _Ellipse(body.cx, body.cy, body.ax - 12.0, body.ay - 12.0), 45.0, 1.0)
        self._paint(img, _Ellipse(body.cx, body.cy, body.ax - 22.0, body.ay - 22.0), 30.0, 2.0)
        img += self.texture * body_alpha
        for _, ellipse, hu in self.organs_at(z):
            self._paint(img, ellipse, hu, 1.5)
        vertebra, canal = self.spine_at(z)
        disc = math.cos(2.0 * math.pi * (z + self.disc_phase) / 30.0) > 0.8
        self._paint(img, vertebra, 80.0 if disc else 700.0, 0.8)
        if not disc:
            self._paint(img, _Ellipse(vertebra.cx, vertebra.cy, vertebra.ax - 2.5,
                                      vertebra.ay - 2.5), 250.0, 0.8)
        self._paint(img, canal, 20.0, 0.8)
        chest = self.chest_factor(z)
        if chest > 0.2:
            for i in range(self.num_ribs):
                if math.cos(2.0 * math.pi * (z + self.rib_phases[i]) / 25.0) <= 0.0:
                    continue
                angle = math.pi * (0.1 + 0.8 * i / (self.num_ribs - 1)) + math.pi
                angle = angle if i % 2 == 0 else angle - math.pi
                rib = _Ellipse(body.cx + 0.9 * body.ax * math.cos(angle),
                               body.cy + 0.9 * body.ay * math.sin(angle), 5.0, 4.0)
                self._paint(img, rib, 600.0, 0.8)
        for blob in blobs:
            section = blob.cross_section(z)
            if section is not None:
                ellipse, rz2 = section
                self._paint(img, ellipse, blob.target_hu, blob.edge_mm, rz2)
        img += noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(
            _NOISE_SIGMA_HU)
        return img

    def _paint(self, img: np.ndarray, ellipse: _Ellipse, value: float, edge_mm: float,
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


@dataclass
class _Lesion:
    blob: _Blob
    key_slice: int
    noisy: bool = False
    dicom_window: Tuple[float, float] = (-175.0, 275.0)


@dataclass
class _Series:
    patient: int
    study: int
    series: int
    size: int
    spacing: float
    interval: float
    num_slices: int
    phantom: _SeriesPhantom
    vessels: List[_Blob] = field(default_factory=list)
    lesions: List[_Lesion] = field(default_factory=list)
    windows: Dict[int, Tuple[int, int]] = field(default_factory=dict)  # key -> slice range

    @property
    def folder(self) -> str:
        return series_folder_name(self.patient, self.study, self.series)

    def z_of(self, slice_index: int) -> float:
        return (slice_index - 1) * self.interval


def _sample_blob_shape(rng: np.random.Generator, diameter_mm: Tuple[float, float]
                       ) -> Tuple[float, float, float, float, float]:
    """``(semi_long, semi_short, theta, contrast_hu, edge_mm)`` shared by lesions and vessels."""
    long_diameter = math.exp(rng.uniform(math.log(diameter_mm[0]), math.log(diameter_mm[1])))
    short_diameter = long_diameter * rng.uniform(0.55, 1.0)
    theta = rng.uniform(0.0, math.pi)
    if rng.random() < 0.5:
        contrast = -rng.uniform(25.0, 70.0)
    else:
        contrast = rng.uniform(30.0, 120.0)
    edge = rng.uniform(0.8, 2.0)
    return long_diameter / 2.0, short_diameter / 2.0, theta, contrast, edge


def _place(rng: np.random.Generator, phantom: _SeriesPhantom, z: float, radius: float,
           occupied: List[Tuple[float, float, float]]) -> Optional[Tuple[float, float, str]]:
    """A free position (x, y, region) for a blob of ``radius`` mm at ``z``, or None.

    The blob must lie within one organ (liver, lung, kidney) or entirely in generic soft
    tissue (abdomen, body wall, mediastinum): the region is checked at the centre and at 8
    points on the blob's outline, so a lesion never straddles an organ border.
    """
    body = phantom.body_at(z)
    angles = np.linspace(0.0, 2.0 * math.pi, 8, endpoint=False)
    for _ in range(400):
        x = rng.uniform(body.cx - body.ax, body.cx + body.ax)
        y = rng.uniform(body.cy - body.ay, body.cy + body.ay)
        region = phantom.region_of(x, y, z)
        if region is None:
            continue
        if not all(math.hypot(x - ox, y - oy) > radius + orad + 4.0 for ox, oy, orad in occupied):
            continue
        # organ lesions: outline well inside the organ; generic ones: well outside all organs
        scale = 1.08 if region in _GENERIC_REGIONS else 0.92
        outline = [phantom.region_of(x + (radius + 2.0) * math.cos(a),
                                     y + (radius + 2.0) * math.sin(a), z, scale) for a in angles]
        if region in _GENERIC_REGIONS:
            consistent = all(r in _GENERIC_REGIONS for r in outline)
        else:
            consistent = all(r == region for r in outline)
        if consistent:
            return x, y, region
    return None


def _make_series(rng: np.random.Generator, patient: int, study: int, series: int, size: int,
                 interval: float, num_lesions: int, two_on_one_key: bool,
                 diameter_mm: Tuple[float, float],
                 vessels_per_series: Tuple[int, int] = (3, 6),
                 vessel_max_diameter_mm: Optional[float] = None) -> _Series:
    spacing = rng.uniform(340.0, 420.0) / size
    depth_mm = rng.uniform(180.0, 320.0)
    num_slices = int(round(depth_mm / interval)) + 1
    phantom = _SeriesPhantom(rng, size, spacing, depth_mm)
    result = _Series(patient, study, series, size, spacing, interval, num_slices, phantom)

    # vessels: tubes through the whole series, cross-sections like lesions
    vessel_diameter_mm = diameter_mm if vessel_max_diameter_mm is None else (
        diameter_mm[0], min(diameter_mm[1], max(vessel_max_diameter_mm, diameter_mm[0])))
    for _ in range(int(rng.integers(vessels_per_series[0], vessels_per_series[1] + 1))):
        semi_long, semi_short, theta, contrast, edge = _sample_blob_shape(rng,
                                                                          vessel_diameter_mm)
        z0 = rng.uniform(0.3, 0.7) * depth_mm
        occupied = [(v.cx, v.cy, v.semi_x) for v in result.vessels]
        spot = _place(rng, phantom, z0, semi_long, occupied)
        if spot is None:
            continue
        x, y, region = spot
        result.vessels.append(
            _Blob(x, y, z0, semi_long, semi_short, math.inf, theta,
                  _BASE_HU_OF_REGION[region] + contrast, edge,
                  tilt_x=rng.uniform(-0.12, 0.12), tilt_y=rng.uniform(-0.12, 0.12),
                  region=region))

    # lesions: ellipsoids centred on their key slice
    key_slices: List[int] = []
    for i in range(num_lesions):
        semi_long, semi_short, theta, contrast, edge = _sample_blob_shape(rng, diameter_mm)
        semi_z = semi_long * rng.uniform(0.6, 1.1)  # z extent 0.6..1.1 x the long diameter
        if i == 1 and two_on_one_key:
            key = key_slices[0]
        else:
            margin = int(math.ceil((semi_z + edge) / interval)) + 1
            key = int(rng.integers(1 + margin, max(num_slices - margin, 2 + margin)))
        z = result.z_of(key)
        occupied = [(les.blob.cx, les.blob.cy, les.blob.semi_x) for les in result.lesions
                    if abs(les.blob.cz - z) < les.blob.semi_z + semi_z + 2.0]
        vessels_at_z = [(v.cross_section(z)[0].cx, v.cross_section(z)[0].cy, v.semi_x)
                        for v in result.vessels]
        spot = _place(rng, phantom, z, semi_long, occupied + vessels_at_z)
        if spot is None and result.vessels:
            # crowded by vessels: place the lesion among the lesions only, then remove the
            # vessels in its way (so many large vessels thin out rather than fail)
            spot = _place(rng, phantom, z, semi_long, occupied)
            if spot is not None:
                result.vessels = [
                    v for v, (vx, vy, vr) in zip(result.vessels, vessels_at_z)
                    if math.hypot(spot[0] - vx, spot[1] - vy) > semi_long + vr + 4.0
                ]
        if spot is None:
            raise RuntimeError(f'could not place lesion {i} of series {result.folder}; '
                               'reduce lesion_diameter_mm')
        x, y, region = spot
        blob = _Blob(x, y, z, semi_long, semi_short, semi_z, theta,
                     _BASE_HU_OF_REGION[region] + contrast, edge, region=region)
        window = (-1500.0, 500.0) if region == 'lung' else (
            (-175.0, 275.0) if rng.random() < 0.7 else (-160.0, 240.0))
        result.lesions.append(_Lesion(blob, key, dicom_window=window))
        if key not in key_slices:
            key_slices.append(key)
            half_mm = rng.uniform(4.0, 9.0) if rng.random() < 0.2 else rng.uniform(12.5, 30.0)
            half = max(1, int(round(half_mm / interval)))
            result.windows[key] = (max(1, key - half), min(num_slices, key + half))
    return result


def _lesion_row(series: _Series, lesion: _Lesion, split: int, gender: str,
                age: int) -> DLInfoRow:
    s = series.spacing
    blob = lesion.blob
    cx, cy = blob.cx / s, blob.cy / s  # 0-based pixel coordinates of the centre
    a, b = blob.semi_x / s, blob.semi_y / s
    c, t = math.cos(blob.theta), math.sin(blob.theta)
    long_axis = (cx - a * c, cy - a * t, cx + a * c, cy + a * t)
    short_axis = (cx + b * t, cy - b * c, cx - b * t, cy + b * c)
    recist = np.array(long_axis + short_axis) + 1.0  # 1-based as in the release
    pad = min(_BOX_PADDING_MAX_PX, _BOX_PADDING_MM / s)
    xs, ys = recist[0::2], recist[1::2]
    box = (max(1.0, xs.min() - pad), max(1.0, ys.min() - pad),
           min(float(series.size), xs.max() + pad), min(float(series.size), ys.max() + pad))
    body = series.phantom.body_at(blob.cz)
    location = (min(max((blob.cx - (body.cx - body.ax)) / (2 * body.ax), 0.0), 1.0),
                min(max((blob.cy - (body.cy - body.ay)) / (2 * body.ay), 0.0), 1.0),
                (lesion.key_slice - 1) / max(series.num_slices - 1, 1))
    file_name = f'{series.folder}_{lesion.key_slice:03d}.png'
    return DLInfoRow(
        csv_row=0,
        file_name=file_name,
        patient_index=series.patient,
        study_index=series.study,
        series_id=series.series,
        key_slice_index=lesion.key_slice,
        measurement_coordinates=tuple(float(v) for v in recist),
        bounding_box=tuple(float(v) for v in box),
        lesion_diameters_pixel=(2.0 * a, 2.0 * b),
        normalized_lesion_location=location,
        coarse_lesion_type=-1 if split == 1 else _LESION_TYPE_OF_REGION[blob.region],
        possibly_noisy=lesion.noisy,
        slice_range=series.windows[lesion.key_slice],
        spacing_mm_px=(s, s, series.interval),
        image_size=(series.size, series.size),
        dicom_windows=(lesion.dicom_window, ),
        patient_gender=gender,
        patient_age=float(age),
        train_val_test=split)


def _lesion_box_3d(series: _Series, blob: _Blob, first: int,
                   last: int) -> Optional[List[float]]:
    """``[x1, y1, z1, x2, y2, z2]`` of a lesion's core (the ellipsoid without its soft edge)
    within slices ``first..last``: z = slice numbers whose plane cuts the core, x, y = 0-based
    pixels of its widest cross-section (rounded outwards, clipped to the image); None if the
    core reaches none of these slices."""
    cut = [k for k in range(first, last + 1) if abs(series.z_of(k) - blob.cz) < blob.semi_z]
    if not cut:
        return None
    c, t = math.cos(blob.theta), math.sin(blob.theta)
    half_x = math.hypot(blob.semi_x * c, blob.semi_y * t)
    half_y = math.hypot(blob.semi_x * t, blob.semi_y * c)
    s, top = series.spacing, float(series.size - 1)
    centre_half = ((blob.cx, half_x), (blob.cy, half_y))
    x1, y1 = (max(0.0, float(math.floor((c0 - h) / s))) for c0, h in centre_half)
    x2, y2 = (min(top, float(math.ceil((c0 + h) / s))) for c0, h in centre_half)
    return [x1, y1, float(cut[0]), x2, y2, float(cut[-1])]


def _split_codes(rng: np.random.Generator, num_patients: int) -> List[int]:
    num_val = max(1, int(round(0.15 * num_patients)))
    num_test = max(1, int(round(0.15 * num_patients)))
    codes = [2] * num_val + [3] * num_test + [1] * (num_patients - num_val - num_test)
    return [codes[i] for i in rng.permutation(num_patients)]


def synthetic_recipe(**options: Any) -> Dict[str, Any]:
    """What decides the bytes :func:`make_synthetic_deeplesion` writes, as a JSON-ready dict.

    Args:
        **options: arguments of :func:`make_synthetic_deeplesion` (not ``out_dir`` or
            ``progress``); the others take its defaults.

    Returns:
        dict: every data argument (tuples as lists) plus ``generator_sha256``, the digest of
        this module's source: two folders with equal recipes hold the same data, and a changed
        generator makes an existing folder's recipe differ.

    Raises:
        TypeError: an unknown option.
    """
    bound = inspect.signature(make_synthetic_deeplesion).bind('', **options)
    bound.apply_defaults()
    recipe = {k: v for k, v in bound.arguments.items() if k not in ('out_dir', 'progress')}
    with open(__file__, 'rb') as handle:
        recipe['generator_sha256'] = hashlib.sha256(handle.read()).hexdigest()
    return json.loads(json.dumps(recipe))  # the form it is stored in


def read_synthetic_recipe(out_dir: str) -> Optional[Dict[str, Any]]:
    """The recipe stored in a generated folder, or None if it has none (or it is unreadable)."""
    try:
        with open(osp.join(out_dir, RECIPE_FILE)) as handle:
            recipe = json.load(handle)
    except (OSError, ValueError):
        return None
    return recipe if isinstance(recipe, dict) else None


def make_synthetic_deeplesion(out_dir: str,
                              num_patients: int = 12,
                              seed: int = 0,
                              image_size: int = 512,
                              lesions_per_series: Tuple[int, int] = (1, 3),
                              lesion_diameter_mm: Tuple[float, float] = (5.0, 40.0),
                              noisy_fraction: float = 0.06,
                              vessels_per_series: Tuple[int, int] = (3, 6),
                              vessel_max_diameter_mm: Optional[float] = None,
                              progress: bool = True) -> Dict[str, Any]:
    """Write a synthetic dataset in the DeepLesion layout (see the module docstring).

    Args:
        out_dir (str): output folder (created; ``DL_info.csv`` and ``Images_png/`` inside must
            not exist yet).
        num_patients (int): number of patients, >= 3 (one per split at least).
        seed (int): random seed; same arguments -> byte-identical output.
        image_size (int): width = height of the images in px (>= 32); one series uses
            ``round(1.5 * image_size)``.
        lesions_per_series (tuple[int, int]): inclusive range of lesions per series.
        lesion_diameter_mm (tuple[float, float]): range of the long diameters in mm.
        noisy_fraction (float): probability of a lesion row being ``Possibly_noisy``.
        vessels_per_series (tuple[int, int]): inclusive range of vessels (confounders) per
            series; ``(0, 0)`` for none. Vessels that stand in the way of a lesion are
            removed, so a series may hold fewer.
        vessel_max_diameter_mm (float, optional): cap of the vessel long diameters, which
            are otherwise drawn exactly like the lesions' (None, the default). A cap below
            ``lesion_diameter_mm[1]`` leaves the largest blobs to the lesions, which tells a
            2D detector something.
        progress (bool): show a tqdm progress bar over the slice files.

    The last file written is ``synthetic_recipe.json`` (:func:`synthetic_recipe`), so a folder
    holding it is complete.

    Returns:
        dict: summary with ``csv_path``, ``images_dir``, ``lesions_3d_path``,
        ``num_subvolumes``, ``num_patients``, ``num_series``,
        ``num_key_slices``, ``num_lesions``, ``num_noisy_rows``, ``num_vessels``,
        ``num_png_files``, ``splits`` (``{'train'|'val'|'test': {'patients', 'key_slices',
        'lesions', 'noisy_lesions'}}``), ``series_per_slice_interval`` (mm -> count),
        ``large_series`` (folder name) and ``large_image_size``, ``multi_lesion_key_slices``
        (File_names).
    """
    if num_patients < 3:
        raise ValueError(f'num_patients must be >= 3 (train/val/test), got {num_patients}')
    if image_size < 32:
        raise ValueError(f'image_size must be >= 32 px, got {image_size}')
    low, high = lesions_per_series
    if not 1 <= low <= high:
        raise ValueError(f'lesions_per_series must be (low, high) with 1 <= low <= high, '
                         f'got {lesions_per_series}')
    if not 0 < lesion_diameter_mm[0] <= lesion_diameter_mm[1]:
        raise ValueError(f'lesion_diameter_mm must be (low, high) with 0 < low <= high, got '
                         f'{lesion_diameter_mm}')
    if not 0.0 <= noisy_fraction <= 1.0:
        raise ValueError(f'noisy_fraction must be in [0, 1], got {noisy_fraction}')
    if not 0 <= vessels_per_series[0] <= vessels_per_series[1]:
        raise ValueError('vessels_per_series must be (low, high) with 0 <= low <= high, got '
                         f'{vessels_per_series}')
    if vessel_max_diameter_mm is not None and not vessel_max_diameter_mm > 0:
        raise ValueError(f'vessel_max_diameter_mm must be > 0, got {vessel_max_diameter_mm}')
    recipe = synthetic_recipe(
        num_patients=num_patients, seed=seed, image_size=image_size,
        lesions_per_series=lesions_per_series, lesion_diameter_mm=lesion_diameter_mm,
        noisy_fraction=noisy_fraction, vessels_per_series=vessels_per_series,
        vessel_max_diameter_mm=vessel_max_diameter_mm)
    csv_path, images_dir, lesions_3d_path, recipe_path = (osp.join(out_dir, name)
                                                          for name in GENERATED_ENTRIES)
    for path in (csv_path, images_dir, lesions_3d_path, recipe_path):
        if osp.exists(path):
            raise FileExistsError(f'{path} already exists; choose an empty output folder')

    rng = np.random.default_rng(seed)
    splits = _split_codes(rng, num_patients)
    # the series layout: some patients get a second study
    layout = [(p, st) for p in range(1, num_patients + 1)
              for st in range(1, (2 if rng.random() < 0.25 else 1) + 1)]
    intervals = np.tile(_SLICE_INTERVALS_MM, len(layout) // 3 + 1)[:len(layout)]
    intervals = intervals[rng.permutation(len(layout))]
    large = int(rng.integers(len(layout)))
    multi = int(rng.integers(len(layout)))
    large_size = int(round(1.5 * image_size))

    all_series: List[_Series] = []
    patients: Dict[int, Tuple[str, int]] = {}
    for i, (patient, study) in enumerate(layout):
        series_rng = np.random.default_rng([seed, patient, study])
        if patient not in patients:
            patients[patient] = ('M' if series_rng.random() < 0.5 else 'F',
                                 int(series_rng.integers(20, 86)))
        num_lesions = int(series_rng.integers(low, high + 1))
        if i == multi:
            num_lesions = max(num_lesions, 2)
        all_series.append(
            _make_series(series_rng, patient, study, 1, large_size if i == large else image_size,
                         float(intervals[i]), num_lesions, i == multi, lesion_diameter_mm,
                         vessels_per_series, vessel_max_diameter_mm))

    lesions = [(series, lesion) for series in all_series for lesion in series.lesions]
    for series, lesion in lesions:
        lesion.noisy = bool(rng.random() < noisy_fraction)
    key_counts = Counter((s.folder, l.key_slice) for s, l in lesions)
    for code in (1, 2, 3):  # every split keeps lesions after the noisy rows are excluded
        in_split = [les for s, les in lesions if splits[s.patient - 1] == code]
        if in_split and all(les.noisy for les in in_split):
            in_split[0].noisy = False
    if not any(lesion.noisy for _, lesion in lesions):
        # guarantee one: preferably a lesion alone on its key slice, in the test split, in a
        # split with other key slices (so that excluding it drops that image, not the split)
        def other_key_slices(series, lesion):
            code = splits[series.patient - 1]
            return len({(s.folder, l.key_slice) for s, l in lesions
                        if splits[s.patient - 1] == code}) - 1

        candidates = sorted(
            ((s, l) for s, l in lesions
             if other_key_slices(s, l) > 0 or key_counts[(s.folder, l.key_slice)] > 1),
            key=lambda sl: (key_counts[(sl[0].folder, sl[1].key_slice)] > 1,
                            splits[sl[0].patient - 1] != 3))
        if candidates:
            candidates[0][1].noisy = True

    rows = [
        _lesion_row(series, lesion, splits[series.patient - 1], *patients[series.patient])
        for series, lesion in lesions
    ]
    rows.sort(key=lambda row: (row.file_name, row.bounding_box))

    jobs = [(series, index) for series in all_series
            for index in sorted({i for lo, hi in series.windows.values()
                                 for i in range(lo, hi + 1)})]
    os.makedirs(images_dir)
    for series in all_series:
        os.makedirs(osp.join(images_dir, series.folder))
    for series, index in tqdm(jobs, desc='synthetic DeepLesion slices', unit='png',
                              disable=not progress):
        noise_rng = np.random.default_rng([seed, series.patient, series.study, index])
        hu = series.phantom.render(series.z_of(index),
                                   series.vessels + [lesion.blob for lesion in series.lesions],
                                   noise_rng)
        values = np.clip(np.rint(hu) + PNG_HU_OFFSET, 0, 65535).astype(np.uint16)
        path = osp.join(images_dir, series.folder, slice_file_name(index))
        if not cv2.imwrite(path, values):
            raise OSError(f'could not write {path}')
    write_dl_info(csv_path, rows)
    lesions_3d: Dict[str, Dict[str, np.ndarray]] = {'train': {}, 'val': {}, 'test': {}}
    for series in all_series:
        stored = [i for lo, hi in series.windows.values() for i in range(lo, hi + 1)]
        for first, last in consecutive_runs(stored):
            boxes = [box for box in (_lesion_box_3d(series, lesion.blob, first, last)
                                     for lesion in series.lesions) if box is not None]
            split = SPLIT_NAMES[splits[series.patient - 1]]
            lesions_3d[split][subvolume_name(series.folder, first, last)] = np.array(
                boxes, dtype=np.float64).reshape(-1, 6)
    write_lens_annotations(osp.join(out_dir, LESIONS_3D_FILE), lesions_3d)
    with atomic_write(recipe_path) as handle:  # written last, whole: marks a complete set
        json.dump(recipe, handle, indent=2, sort_keys=True)

    key_counts = Counter(row.file_name for row in rows)
    summary_splits = {}
    for code, name in SPLIT_NAMES.items():
        split_rows = [row for row in rows if row.train_val_test == code]
        summary_splits[name] = dict(
            patients=len({row.patient_index for row in split_rows}),
            key_slices=len({row.file_name for row in split_rows}),
            lesions=len(split_rows),
            noisy_lesions=sum(row.possibly_noisy for row in split_rows))
    return dict(
        csv_path=csv_path,
        images_dir=images_dir,
        lesions_3d_path=lesions_3d_path,
        num_subvolumes=sum(len(volumes) for volumes in lesions_3d.values()),
        num_patients=num_patients,
        num_series=len(all_series),
        num_key_slices=len(key_counts),
        num_lesions=len(rows),
        num_noisy_rows=sum(row.possibly_noisy for row in rows),
        num_vessels=sum(len(series.vessels) for series in all_series),
        num_png_files=len(jobs),
        splits=summary_splits,
        series_per_slice_interval={
            interval: sum(series.interval == interval for series in all_series)
            for interval in _SLICE_INTERVALS_MM
        },
        large_series=all_series[large].folder,
        large_image_size=large_size,
        multi_lesion_key_slices=sorted(name for name, count in key_counts.items() if count > 1))

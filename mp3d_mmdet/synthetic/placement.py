"""The series of the synthetic set and what is placed in them: lesions and vessels.

* **Lesions**: 3D ellipsoids with soft edges (linear ramp ~1-2 mm), long diameter
  log-uniform in the given range, short/long 0.55..1, z extent 0.6..1.1 x the long diameter,
  random in-plane orientation; hypo-dense (-25..-70 HU) or hyper-dense (+30..+120 HU)
  relative to the tissue they sit in (:data:`~mp3d_mmdet.synthetic.anatomy.REGIONS`). Each is
  centred on its key slice; around every key slice a window of slices is stored (half width
  12.5..30 mm, or 4..9 mm for about one key slice in five; clipped to the volume).
* **Vessels** (confounders): tubes along z (slight tilt) whose cross-section is drawn from the
  *same* size, contrast, edge and position distributions as the lesions -- in a single slice a
  vessel looks exactly like a lesion, but it runs through every slice. A vessel that stands
  in a lesion's way is removed.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..datasets.dl_info import series_folder_name
from .anatomy import GENERIC_REGIONS, REGIONS, SeriesPhantom
from .shapes import Blob

__all__ = ['Lesion', 'Series', 'make_series', 'sample_blob_shape', 'place']

#: ``(x, y, radius)`` in mm of a blob already placed at the z of interest.
Occupied = List[Tuple[float, float, float]]


@dataclass
class Lesion:
    """A lesion and its annotation: key slice (1-based), ``Possibly_noisy`` flag and the
    DICOM window of its csv row."""
    blob: Blob
    key_slice: int
    noisy: bool = False
    dicom_window: Tuple[float, float] = (-175.0, 275.0)


@dataclass
class Series:
    """One CT series: its identifiers, grid (``size`` px of ``spacing`` mm, ``num_slices``
    slices ``interval`` mm apart), anatomy, vessels, lesions and stored windows (key slice ->
    inclusive range of stored slices)."""
    patient: int
    study: int
    series: int
    size: int
    spacing: float
    interval: float
    num_slices: int
    phantom: SeriesPhantom
    vessels: List[Blob] = field(default_factory=list)
    lesions: List[Lesion] = field(default_factory=list)
    windows: Dict[int, Tuple[int, int]] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The release's folder name ``<patient:06d>_<study:02d>_<series:02d>``."""
        return series_folder_name(self.patient, self.study, self.series)

    def z_of(self, slice_index: int) -> float:
        """z in mm of the 1-based slice number."""
        return (slice_index - 1) * self.interval

    def stored_slices(self) -> List[int]:
        """The slice numbers of all windows, ascending, each once."""
        return sorted({i for lo, hi in self.windows.values() for i in range(lo, hi + 1)})


def sample_blob_shape(rng: np.random.Generator, diameter_mm: Tuple[float, float]
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


def place(rng: np.random.Generator, phantom: SeriesPhantom, z: float, radius: float,
          occupied: Occupied) -> Optional[Tuple[float, float, str]]:
    """A free position (x, y, region) for a blob of ``radius`` mm at ``z``, or None.

    The blob must lie within one organ (liver, lung, kidney) or entirely in generic soft
    tissue (abdomen, body wall, mediastinum), 4 mm clear of every ``occupied`` blob: the
    region is checked at the centre and at 8 points on the blob's outline, so a lesion never
    straddles an organ border. Up to 400 random tries.
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
        generic = region in GENERIC_REGIONS
        scale = 1.08 if generic else 0.92
        outline = [phantom.region_of(x + (radius + 2.0) * math.cos(a),
                                     y + (radius + 2.0) * math.sin(a), z, scale) for a in angles]
        if generic:
            consistent = all(r in GENERIC_REGIONS for r in outline)
        else:
            consistent = all(r == region for r in outline)
        if consistent:
            return x, y, region
    return None


def make_series(rng: np.random.Generator, patient: int, study: int, series: int, size: int,
                interval: float, num_lesions: int, two_on_one_key: bool,
                diameter_mm: Tuple[float, float],
                vessels_per_series: Tuple[int, int] = (3, 6),
                vessel_max_diameter_mm: Optional[float] = None) -> Series:
    """A series with its anatomy, vessels and lesions, all drawn from ``rng``.

    Args:
        rng: the series' random generator.
        patient: patient index (1-based).
        study: study index (1-based).
        series: series index (1-based).
        size: image width = height in px.
        interval: slice interval in mm.
        num_lesions: lesions to place.
        two_on_one_key: put the second lesion on the first one's key slice.
        diameter_mm: range of the lesion long diameters.
        vessels_per_series: inclusive range of the vessels drawn.
        vessel_max_diameter_mm: cap of the vessel long diameters; None: as the lesions'.

    Raises:
        RuntimeError: a lesion found no free place.
    """
    spacing = rng.uniform(340.0, 420.0) / size
    depth_mm = rng.uniform(180.0, 320.0)
    num_slices = int(round(depth_mm / interval)) + 1
    phantom = SeriesPhantom(rng, size, spacing, depth_mm)
    result = Series(patient, study, series, size, spacing, interval, num_slices, phantom)
    vessel_diameter_mm = diameter_mm if vessel_max_diameter_mm is None else (
        diameter_mm[0], min(diameter_mm[1], max(vessel_max_diameter_mm, diameter_mm[0])))
    _add_vessels(rng, result, depth_mm, vessel_diameter_mm, vessels_per_series)
    for i in range(num_lesions):
        _add_lesion(rng, result, i, diameter_mm, i == 1 and two_on_one_key)
    return result


def _add_vessels(rng: np.random.Generator, series: Series, depth_mm: float,
                 diameter_mm: Tuple[float, float], count: Tuple[int, int]) -> None:
    """Tubes through the whole series, each placed at a random z in its middle 40 %; one
    that finds no free place is dropped."""
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        semi_long, semi_short, theta, contrast, edge = sample_blob_shape(rng, diameter_mm)
        z0 = rng.uniform(0.3, 0.7) * depth_mm
        occupied = [(v.cx, v.cy, v.semi_x) for v in series.vessels]
        spot = place(rng, series.phantom, z0, semi_long, occupied)
        if spot is None:
            continue
        x, y, region = spot
        series.vessels.append(
            Blob(x, y, z0, semi_long, semi_short, math.inf, theta,
                 REGIONS[region].base_hu + contrast, edge,
                 tilt_x=rng.uniform(-0.12, 0.12), tilt_y=rng.uniform(-0.12, 0.12),
                 region=region))


def _add_lesion(rng: np.random.Generator, series: Series, index: int,
                diameter_mm: Tuple[float, float], on_first_key: bool) -> None:
    """An ellipsoid centred on its key slice (the first lesion's if ``on_first_key``, else
    one far enough from the volume's ends), and the stored window around a new key slice."""
    semi_long, semi_short, theta, contrast, edge = sample_blob_shape(rng, diameter_mm)
    semi_z = semi_long * rng.uniform(0.6, 1.1)  # z extent 0.6..1.1 x the long diameter
    if on_first_key:
        key = series.lesions[0].key_slice
    else:
        margin = int(math.ceil((semi_z + edge) / series.interval)) + 1
        key = int(rng.integers(1 + margin, max(series.num_slices - margin, 2 + margin)))
    z = series.z_of(key)
    x, y, region = _free_spot(rng, series, index, z, semi_long, semi_z)
    blob = Blob(x, y, z, semi_long, semi_short, semi_z, theta,
                REGIONS[region].base_hu + contrast, edge, region=region)
    window = (-1500.0, 500.0) if region == 'lung' else (
        (-175.0, 275.0) if rng.random() < 0.7 else (-160.0, 240.0))
    series.lesions.append(Lesion(blob, key, dicom_window=window))
    if key not in series.windows:
        half_mm = rng.uniform(4.0, 9.0) if rng.random() < 0.2 else rng.uniform(12.5, 30.0)
        half = max(1, int(round(half_mm / series.interval)))
        series.windows[key] = (max(1, key - half), min(series.num_slices, key + half))


def _free_spot(rng: np.random.Generator, series: Series, index: int, z: float,
               semi_long: float, semi_z: float) -> Tuple[float, float, str]:
    """Where lesion ``index`` goes at ``z``: clear of the lesions it overlaps in z and of
    the vessels; if the vessels crowd it out, clear of the lesions only, and the vessels in
    its way are removed (so many large vessels thin out rather than fail)."""
    occupied = [(les.blob.cx, les.blob.cy, les.blob.semi_x) for les in series.lesions
                if abs(les.blob.cz - z) < les.blob.semi_z + semi_z + 2.0]
    vessels_at_z = [(v.cross_section(z)[0].cx, v.cross_section(z)[0].cy, v.semi_x)
                    for v in series.vessels]
    spot = place(rng, series.phantom, z, semi_long, occupied + vessels_at_z)
    if spot is None and series.vessels:
        spot = place(rng, series.phantom, z, semi_long, occupied)
        if spot is not None:
            series.vessels = [
                v for v, (vx, vy, vr) in zip(series.vessels, vessels_at_z)
                if math.hypot(spot[0] - vx, spot[1] - vy) > semi_long + vr + 4.0
            ]
    if spot is None:
        raise RuntimeError(f'could not place lesion {index} of series {series.folder}; '
                           'reduce lesion_diameter_mm')
    return spot

"""Lesions and vessels: 3D blobs that fade along z vs tubes through every slice, vessel
options, crowded series."""
import math
import os.path as osp

import numpy as np
import pytest

from mp3d_mmdet.datasets.dl_info import read_dl_info
from mp3d_mmdet.datasets.transforms import read_uint16_png
from mp3d_mmdet.synthetic import make_synthetic_deeplesion
from mp3d_mmdet.synthetic.placement import make_series


def key_slice_contrast(root, row, index):
    """Mean HU inside the lesion's short-axis disc minus its surroundings at slice ``index``."""
    path = osp.join(root, 'Images_png', row.series_folder, f'{index:03d}.png')
    hu = read_uint16_png(path).astype(np.float64) - 32768
    m = np.array(row.measurement_coordinates).reshape(4, 2) - 1.0
    centre = m[:2].mean(axis=0)
    radius = row.lesion_diameters_pixel[1] / 2
    ys, xs = np.mgrid[:hu.shape[0], :hu.shape[1]]
    distance = np.hypot(xs - centre[0], ys - centre[1])
    inside = distance <= max(radius * 0.5, 1.0)
    ring = (distance >= radius * 1.3 + 2) & (distance <= radius * 1.3 + 4)
    return hu[inside].mean() - np.median(hu[ring])


def test_lesions_are_3d_blobs_that_fade_along_z(tmp_path):
    root = str(tmp_path / 'big')
    make_synthetic_deeplesion(root, num_patients=3, seed=5, image_size=192,
                              lesion_diameter_mm=(20.0, 30.0), progress=False)
    checked = 0
    rows = read_dl_info(osp.join(root, 'DL_info.csv'))
    for row in rows:
        at_key = key_slice_contrast(root, row, row.key_slice_index)
        assert abs(at_key) > 15  # visible on the key slice
        # the ellipsoid (z semi-axis <= 0.55 x long diameter, soft edge <= 2 mm) is gone at the
        # stored slice farthest from the key slice, if that one is far enough
        interval = row.spacing_mm_px[2]
        long_mm, short_mm = (d * row.spacing_mm_px[0] for d in row.lesion_diameters_pixel)
        reach_mm = 0.55 * long_mm * (1.0 + 2.0 / (short_mm / 2.0)) + 1.0
        far = max(row.slice_range, key=lambda i: abs(i - row.key_slice_index))
        if abs(far - row.key_slice_index) * interval > reach_mm:
            checked += 1
            assert abs(key_slice_contrast(root, row, far)) < abs(at_key) / 2
    assert checked >= 1


def test_vessels_look_like_lesions_in_a_slice_but_run_through_every_slice():
    rng = np.random.default_rng(0)
    series = make_series(rng, 1, 1, 1, 256, 2.5, 2, False, (15.0, 30.0))
    assert len(series.vessels) >= 2
    blobs = series.vessels + [lesion.blob for lesion in series.lesions]

    def contrast(blob, z):
        """HU at the blob's centre minus HU 3 radii away (noise-free rendering)."""
        section = blob.cross_section(z)
        assert section is not None
        ellipse, _ = section
        hu = series.phantom.render(z, blobs, np.random.default_rng(1)) - series.phantom.render(
            z, [], np.random.default_rng(1))
        row, col = int(round(ellipse.cy / series.spacing)), int(round(ellipse.cx /
                                                                      series.spacing))
        return hu[row, col]

    for lesion in series.lesions:
        z = lesion.blob.cz
        assert abs(contrast(lesion.blob, z)) > 20
        assert lesion.blob.cross_section(z + lesion.blob.semi_z + 3.0) is None  # a 3D blob
    for vessel in series.vessels:
        for z in (0.0, series.z_of(series.num_slices) / 2, series.z_of(series.num_slices)):
            assert abs(contrast(vessel, z)) > 20  # present at both ends of the series
        # same in-plane shape family as the lesions
        assert 15.0 / 2 * 0.55 - 1e-9 <= vessel.semi_y <= vessel.semi_x <= 30.0 / 2 + 1e-9
        assert vessel.edge_mm == pytest.approx(vessel.edge_mm) and 0.8 <= vessel.edge_mm <= 2.0


@pytest.mark.parametrize('vessels,cap', [((0, 0), None), ((5, 5), None), ((3, 6), 20.0)])
def test_vessel_count_and_size_options(vessels, cap):
    for seed in range(4):
        series = make_series(np.random.default_rng(seed), 1, 1, 1, 256, 2.5, 1, False,
                             (15.0, 30.0), vessels_per_series=vessels,
                             vessel_max_diameter_mm=cap)
        # a vessel is only ever removed (out of a lesion's way), never added
        assert len(series.vessels) <= vessels[1]
        for vessel in series.vessels:
            assert vessel.semi_x <= (30.0 if cap is None else cap) / 2 + 1e-9
        lesion = series.lesions[0].blob
        for vessel in series.vessels:  # no vessel overlaps the lesion on its key slice
            section, _ = vessel.cross_section(lesion.cz)
            assert math.hypot(section.cx - lesion.cx, section.cy - lesion.cy) > (
                lesion.semi_x + vessel.semi_x)
    if vessels == (5, 5):
        assert len(series.vessels) >= 3  # crowding removes few


def test_crowded_series_keep_their_lesions():
    """Many large vessels thin out in the lesions' way instead of failing the generator."""
    kept = []
    for seed in range(6):
        series = make_series(np.random.default_rng(seed), 1, 1, 1, 128, 5.0, 3, False,
                             (30.0, 45.0), vessels_per_series=(8, 8))
        assert len(series.lesions) == 3
        kept.append(len(series.vessels))
    assert min(kept) < 8  # the crowding did happen

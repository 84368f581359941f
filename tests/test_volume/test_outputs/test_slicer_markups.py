"""3D Slicer markups: one ROI per candidate whose box, read back from the file, lands on the
voxels of the candidate in the scan's own grid (oblique, permuted, non-trivial origin)."""
import json

import numpy as np

from helpers.viewer_fixtures import expected_original_corners, oblique_result
from mp3d_mmdet.volume import SLICER_MARKUPS_SCHEMA, candidate_regions, write_slicer_markups


def roi_corners(roi):
    """The 8 corners of a Slicer ROI (LPS), x fastest: centre + R @ (+-size / 2)."""
    axes = np.asarray(roi['orientation'], dtype=float).reshape(3, 3)  # columns = ROI axes
    half = np.asarray(roi['size'], dtype=float) / 2
    bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])
    return np.asarray(roi['center']) + (np.where(bits, half, -half)) @ axes.T


def test_rois_round_trip_to_the_candidate_voxels(tmp_path):
    result = oblique_result(str(tmp_path))
    path = str(tmp_path / 'lesions.mrk.json')
    write_slicer_markups(result, path)
    document = json.loads(open(path).read())
    assert document['@schema'] == SLICER_MARKUPS_SCHEMA
    rois = document['markups']
    regions = candidate_regions(result)
    assert [roi['name'] for roi in rois] == ['lesion 1', 'lesion 2']
    for roi, region in zip(rois, regions):
        assert (roi['type'], roi['coordinateSystem'], roi['coordinateUnits']) == (
            'ROI', 'LPS', 'mm')
        assert roi['description'].startswith(f'score {region.score:.3f}')
        # Slicer draws a box ROI from its control point: one, at the centre, whose
        # description (the one Slicer shows) gives the score and slices
        (point, ) = roi['controlPoints']
        np.testing.assert_allclose(point['position'], roi['center'], atol=1e-9)
        np.testing.assert_allclose(point['position'], region.center_lps_mm, atol=1e-3)
        assert point['label'] == roi['name']
        assert point['positionStatus'] == 'defined'
        assert point['description'] == roi['description']
        assert f'slices {region.first_slice}-{region.last_slice}' in point['description']
        original = result.volume.original_geometry.physical_to_index(roi_corners(roi))
        np.testing.assert_allclose(original, expected_original_corners(result, region.box_index),
                                   atol=1e-3)
    # only the regions asked for
    write_slicer_markups(result, path, regions=regions[1:])
    assert [roi['name'] for roi in json.loads(open(path).read())['markups']] == ['lesion 2']

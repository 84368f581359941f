"""The 3D regions of lesion candidates: boxes in voxel indices and physical space on an
oblique, permuted scan."""
import numpy as np
import pytest

from helpers.viewer_fixtures import SPACING, expected_original_corners, oblique_result
from mp3d_mmdet.volume import candidate_box_3d, candidate_regions


@pytest.fixture()
def result(tmp_path):
    return oblique_result(str(tmp_path))


def test_boxes_are_the_union_of_the_linked_boxes_over_whole_slices(result):
    first, second = candidate_regions(result)
    assert (first.candidate_id, second.candidate_id) == (1, 2)
    np.testing.assert_allclose(candidate_box_3d(result.candidates[0]), [5.5, 8, 2, 15, 21, 4])
    np.testing.assert_allclose(first.box_index, [5.5, 8, 1.5, 15, 21, 4.5])
    assert (first.first_slice, first.last_slice, first.best_slice) == (2, 4, 2)
    assert first.score == pytest.approx(0.9) and first.mean_score == pytest.approx(0.85)
    # the bridged slice 3 gets the 3D box's in-plane extent
    np.testing.assert_allclose(first.slice_boxes[2], [5.5, 8, 14.5, 20])
    np.testing.assert_allclose(first.slice_boxes[3], [5.5, 8, 15, 21])
    assert sorted(first.slice_boxes) == [2, 3, 4]
    # the axial grid's spacing: (x, y) = the file's (j, i) spacing after the permutation
    axial_spacing = np.array(result.volume.geometry.spacing)
    np.testing.assert_allclose(sorted(axial_spacing[:2]), sorted(SPACING[:2]))
    np.testing.assert_allclose(first.size_mm, [9.5, 13, 3] * axial_spacing)
    assert [r.candidate_id for r in candidate_regions(result, score_thr=0.7)] == [1]


def test_physical_corners_land_on_the_box_in_the_file_grid(result):
    for region in candidate_regions(result):
        original = result.volume.original_geometry.physical_to_index(region.corners_lps_mm)
        np.testing.assert_allclose(original, expected_original_corners(result, region.box_index),
                                   atol=1e-9)
        np.testing.assert_allclose(region.center_lps_mm, region.corners_lps_mm.mean(axis=0))
        # the box axes are the (oblique) axial grid axes: orthonormal, not the identity
        np.testing.assert_allclose(region.axes_lps.T @ region.axes_lps, np.eye(3), atol=1e-6)
        assert not np.allclose(region.axes_lps, np.eye(3))

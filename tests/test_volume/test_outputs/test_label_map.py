"""The NIfTI label map: on the input file's exact grid, each candidate's voxels labelled with
its id (oblique, permuted scan with a non-trivial origin), and its legend."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from test_volume.viewer_fixtures import oblique_result

from mp3d_mmdet.volume import candidate_label_array, candidate_regions, write_label_map


def test_the_map_has_the_input_grid_and_labels_the_candidate_voxels(tmp_path):
    result = oblique_result(str(tmp_path))
    path, legend_path = str(tmp_path / 'labels.nii.gz'), str(tmp_path / 'labels.json')
    write_label_map(result, path, legend_path)
    image = sitk.ReadImage(path)
    stored = sitk.ReadImage(str(tmp_path / 'oblique.nii.gz'))
    assert image.GetSize() == stored.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), stored.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), stored.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), stored.GetDirection(), atol=1e-6)
    labels = sitk.GetArrayFromImage(image)  # (k, j, i) of the file
    assert labels.dtype == np.uint16
    regions = candidate_regions(result)
    for region in regions:
        k, j, i = np.nonzero(labels == region.candidate_id)
        # every labelled voxel of the file, mapped to the axial grid, lies in the box
        axial = result.volume.geometry.physical_to_index(
            result.volume.original_geometry.index_to_physical(np.stack([i, j, k], axis=1)))
        lo, hi = region.box_index[:3], region.box_index[3:]
        assert ((axial >= lo - 1e-6) & (axial <= hi + 1e-6)).all()
        # and every voxel centre of the box is labelled: 9 x 13 x 3 (first), 7 x 8 x 1
        x1, y1, _, x2, y2, _ = region.box_index
        count = ((np.floor(x2) - np.ceil(x1) + 1) * (np.floor(y2) - np.ceil(y1) + 1)
                 * (region.last_slice - region.first_slice + 1))
        assert len(k) == count
    assert (np.count_nonzero(labels) ==
            np.count_nonzero(candidate_label_array(result.volume, regions)))
    legend = json.loads(open(legend_path).read())
    assert [entry['label'] for entry in legend['labels']] == [1, 2]
    assert legend['labels'][0]['axial_slices'] == [2, 4] and legend['background'] == 0
    assert legend['label_map'] == 'labels.nii.gz'


def test_score_threshold_and_bad_names(tmp_path):
    result = oblique_result(str(tmp_path))
    path, legend = str(tmp_path / 'labels.nii'), str(tmp_path / 'legend.json')
    write_label_map(result, path, legend, score_thr=0.7)
    assert set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(path)))) == {0, 1}
    assert json.loads(open(legend).read())['score_thr'] == 0.7
    with pytest.raises(ValueError, match=r'labels.png: a NIfTI label map must end in \.nii'):
        write_label_map(result, str(tmp_path / 'labels.png'), legend)

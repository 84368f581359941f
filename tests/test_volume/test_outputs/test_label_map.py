"""The NIfTI label map: on the input file's exact grid, each candidate's voxels labelled with
its id (oblique, permuted scan with a non-trivial origin), and its legend."""
import dataclasses
import json
import shlex

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.viewer_fixtures import oblique_result
from mp3d_mmdet.volume import candidate_label_array, candidate_regions, write_label_map
from mp3d_mmdet.volume.outputs import LABEL_COLORS


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
    assert legend['hidden_labels'] == []
    for entry in legend['labels']:
        assert entry['voxel_count'] == np.count_nonzero(labels == entry['label']) > 0
        assert entry['hidden_by_overlap'] is False


def test_overlap_hidden_labels_and_colour_tables(tmp_path):
    """A third, lower-scored region inside candidate 1's box: absent from the map, which the
    legend says; both colour tables name every label in the legend's colours."""
    result = oblique_result(str(tmp_path))
    first, second = candidate_regions(result)
    inner = dataclasses.replace(first, candidate_id=3, score=0.3,
                                box_index=first.box_index + np.array([1, 1, 0, -1, -1, 0]))
    paths = [str(tmp_path / name) for name in
             ('labels.nii.gz', 'labels.json', 'labels.ctbl', 'labels_itksnap.txt')]
    write_label_map(result, *paths[:2], regions=[first, second, inner],
                    slicer_table_path=paths[2], itksnap_path=paths[3])
    labels = sitk.GetArrayFromImage(sitk.ReadImage(paths[0]))
    assert set(np.unique(labels)) == {0, 1, 2}
    legend = json.loads(open(paths[1]).read())
    assert legend['hidden_labels'] == [3]
    assert [(e['label'], e['voxel_count'] > 0, e['hidden_by_overlap'])
            for e in legend['labels']] == [(1, True, False), (2, True, False), (3, False, True)]
    assert [e['voxel_count'] for e in legend['labels'][:2]] == [
        np.count_nonzero(labels == 1), np.count_nonzero(labels == 2)]
    assert (legend['slicer_color_table'], legend['itksnap_label_descriptions']) == (
        'labels.ctbl', 'labels_itksnap.txt')
    colours = {e['label']: tuple(e['color_rgb']) for e in legend['labels']}
    assert colours == {1: LABEL_COLORS[0], 2: LABEL_COLORS[1], 3: LABEL_COLORS[2]}
    # 3D Slicer colour table: 'index name R G B A', label 0 transparent
    rows = [line.split() for line in open(paths[2]) if not line.startswith('#')]
    assert rows[0] == ['0', 'background', '0', '0', '0', '0']
    assert {int(r[0]): (r[1], tuple(int(v) for v in r[2:5]), r[5]) for r in rows[1:]} == {
        k: (f'lesion_{k}', colours[k], '255') for k in (1, 2, 3)}
    # ITK-SNAP: 'IDX R G B A VIS MSH "LABEL"'
    rows = [shlex.split(line) for line in open(paths[3]) if not line.startswith('#')]
    assert rows[0] == ['0', '0', '0', '0', '0', '0', '0', 'Clear Label']
    assert {int(r[0]): (tuple(int(v) for v in r[1:4]), r[7]) for r in rows[1:]} == {
        k: (colours[k], f'lesion {k}') for k in (1, 2, 3)}


def test_score_threshold_and_bad_names(tmp_path):
    result = oblique_result(str(tmp_path))
    path, legend = str(tmp_path / 'labels.nii'), str(tmp_path / 'legend.json')
    write_label_map(result, path, legend, score_thr=0.7)
    assert set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(path)))) == {0, 1}
    assert json.loads(open(legend).read())['score_thr'] == 0.7
    with pytest.raises(ValueError, match=r'labels.png: a NIfTI label map must end in \.nii'):
        write_label_map(result, str(tmp_path / 'labels.png'), legend)

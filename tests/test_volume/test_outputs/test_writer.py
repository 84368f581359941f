"""detections.json / lesions.csv / overlays written from known per-slice detections."""
import csv
import json

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from helpers.volume_fixtures import make_sitk_image
from mp3d_mmdet.volume import (LESION_CSV_COLUMNS, SliceDetections, VolumeDetectionResult,
                               link_slice_detections, measure_lesion_candidates, read_ct_volume,
                               write_volume_outputs)


@pytest.fixture()
def result(tmp_path):
    # stored RAS-flipped (x and y reversed): read back reoriented to LPS
    hu = np.full((6, 40, 50), 40, np.int16)
    image = make_sitk_image(hu, (0.8, 0.8, 3.0), (100.0, 50.0, -300.0),
                            (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    path = str(tmp_path / 'ras.nii.gz')
    sitk.WriteImage(image, path)
    volume = read_ct_volume(path)
    assert volume.reoriented
    boxes = [np.zeros((0, 4), np.float32) for _ in range(6)]
    scores = [np.zeros(0, np.float32) for _ in range(6)]
    boxes[1] = np.array([[10, 10, 20, 16]], np.float32)
    scores[1] = np.array([0.6], np.float32)
    boxes[2] = np.array([[10, 10, 20, 16], [30, 30, 36, 34], [11, 10, 21, 16]], np.float32)
    scores[2] = np.array([0.9, 0.7, 0.55], np.float32)
    detections = SliceDetections(boxes, scores, list(range(6)), 0.5, 'rule', (50, 40),
                                 (0.8, 0.8), 4, dict(assemble=0.1, pipeline=0.2, network=3.0,
                                                     postprocess=0.01))
    candidates = measure_lesion_candidates(link_slice_detections(boxes, scores, iou_thr=0.5),
                                           volume.geometry, volume.original_geometry)
    return VolumeDetectionResult(
        volume=volume, detections=detections, candidates=candidates,
        linking=dict(iou_thr=0.5, max_gap=1, min_slices=1),
        model=dict(config='cfg.py', checkpoint='ckpt.pth'), warnings=list(volume.warnings),
        timings=dict(read=0.05, **detections.timings, link=0.001)), image


def test_json_csv_and_overlays(tmp_path, result):
    result, image = result
    paths = write_volume_outputs(result, str(tmp_path / 'out'), top_k_overlays=1)
    with open(paths['json']) as handle:
        data = json.load(handle)
    assert list(data) == ['format_version', 'input', 'model', 'inference', 'linking',
                          'warnings', 'timings_s', 'conventions', 'detections', 'candidates']
    stored = data['input']
    assert stored['spacing'] == pytest.approx([0.8, 0.8, 3.0])  # NIfTI: float32 spacing
    assert stored['origin'] == [100.0, 50.0, -300.0]
    assert stored['direction'] == [-1, 0, 0, 0, -1, 0, 0, 0, 1]
    assert stored['orientation'] == 'RAS' and stored['reoriented'] is True
    assert stored['axial_grid']['orientation'] == 'LPS'
    assert stored['axial_grid']['origin'] == pytest.approx([100.0 - 49 * 0.8, 50.0 - 39 * 0.8,
                                                            -300.0], abs=1e-4)
    assert data['warnings'][0].endswith('reoriented from RAS to LPS (axis permutation/flip, no '
                                        'resampling) so that slices are axial')
    assert data['inference']['edge_replicated_slices'] == 4
    assert data['timings_s']['network'] == 3.0
    # detections: ids in slice order; the 0.55 box duplicates the 0.9 box of candidate 1
    assert [(d['id'], d['slice'], d['score'], d['candidate_id']) for d in data['detections']] \
        == [(1, 1, 0.6, 1), (2, 2, 0.9, 1), (3, 2, 0.7, 2), (4, 2, 0.55, 1)]
    first = data['detections'][0]
    assert first['box'] == [10.0, 10.0, 20.0, 16.0]
    # physical centre of the box and its corners in the stored (RAS) grid: through SimpleITK
    centre_mm = image.TransformContinuousIndexToPhysicalPoint((49 - 15.0, 39 - 13.0, 1.0))
    assert first['center_mm'] == pytest.approx(centre_mm, abs=1e-3)
    np.testing.assert_allclose(first['corners_index_original'], [[39.0, 29.0, 1.0],
                                                                 [29.0, 23.0, 1.0]], atol=1e-3)
    one, two = data['candidates']
    assert one == {
        'id': 1, 'slice_range': [1, 2], 'best_slice': 2, 'box': [10.0, 10.0, 20.0, 16.0],
        'max_score': 0.9, 'mean_score': 0.75, 'num_slices_detected': 2, 'long_axis_mm': 8.0,
        'short_axis_mm': 4.8, 'z_extent_mm': 6.0, 'center_index': [15.0, 13.0, 2.0],
        'center_mm': pytest.approx(image.TransformContinuousIndexToPhysicalPoint(
            (34.0, 26.0, 2.0)), abs=1e-3),
        'center_index_original': [34.0, 26.0, 2.0], 'detection_ids': [1, 2],
        'duplicate_detection_ids': [4], 'overlay': 'overlays/candidate_001.png'}
    assert two['slice_range'] == [2, 2] and two['overlay'] is None

    with open(paths['csv']) as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == LESION_CSV_COLUMNS
    assert len(rows) == 3
    row = dict(zip(rows[0], rows[1]))
    assert (row['candidate_id'], row['first_slice'], row['last_slice'], row['best_slice']) == \
        ('1', '1', '2', '2')
    assert (row['max_score'], row['mean_score'], row['box_x1'], row['box_y2']) == \
        ('0.9000', '0.7500', '10.00', '16.00')
    assert (row['long_axis_mm'], row['short_axis_mm'], row['z_extent_mm']) == \
        ('8.00', '4.80', '6.00')
    assert [float(row[k]) for k in ('center_x_mm', 'center_y_mm', 'center_z_mm')] == \
        pytest.approx(one['center_mm'], abs=1e-3)
    assert (row['center_i_original'], row['center_k_original']) == ('34.000', '2.000')
    assert row['overlay'] == 'overlays/candidate_001.png'
    assert dict(zip(rows[0], rows[2]))['overlay'] == ''

    overlays = sorted((tmp_path / 'out' / 'overlays').glob('*.png'))
    assert [p.name for p in overlays] == ['candidate_001.png']
    picture = cv2.imread(str(overlays[0]))
    assert picture.shape == (320, 400, 3)  # 40 x 50 px slice, upscale min(8, round(512 / 50))
    # the box (x 10..20, y 10..16, upscaled 8x) is drawn in colour on the grey slice
    assert tuple(picture[8 * 13, 8 * 10]) != tuple(picture[8 * 13, 8 * 10 - 20])
    # scale bar bottom right: 400 px * 0.1 mm/px / 5 = 8 mm wanted -> a 5 mm bar of 50 px
    assert tuple(picture[320 - 10, 400 - 9]) == (255, 255, 255)
    assert tuple(picture[320 - 10, 400 - 8 - 50]) == (255, 255, 255)
    assert tuple(picture[320 - 10, 400 - 8 - 56]) != (255, 255, 255)


def test_output_format_names():
    from mp3d_mmdet.volume import OUTPUT_FORMATS, parse_output_formats
    assert list(OUTPUT_FORMATS) == ['slicer', 'nifti', 'dicom-sr', 'html']
    assert parse_output_formats('all', is_dicom=False) == ('slicer', 'nifti', 'html')
    assert parse_output_formats('all', is_dicom=True) == ('slicer', 'nifti', 'dicom-sr', 'html')
    assert parse_output_formats(' html, slicer,html ', is_dicom=False) == ('slicer', 'html')
    assert parse_output_formats('none', is_dicom=True) == ()
    with pytest.raises(ValueError, match=r"--formats: unknown format\(s\) \['mrb'\]"):
        parse_output_formats('slicer,mrb', is_dicom=True)
    with pytest.raises(ValueError, match=r"unknown format\(s\) \[','\]"):
        parse_output_formats(',', is_dicom=True)
    with pytest.raises(ValueError, match='dicom-sr needs a DICOM series as input'):
        parse_output_formats('dicom-sr', is_dicom=False)


def test_viewer_files_join_the_result_folder(tmp_path, result):
    result, _ = result
    paths = write_volume_outputs(result, str(tmp_path / 'out'), formats=('slicer', 'nifti'))
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        '.mp3d_outputs.json', 'detections.json', 'lesion_labels.ctbl', 'lesion_labels.json',
        'lesion_labels.nii.gz', 'lesion_labels_itksnap.txt', 'lesions.csv', 'lesions.mrk.json',
        'overlays']
    assert paths['slicer'] == str(tmp_path / 'out' / 'lesions.mrk.json')
    markups = json.loads((tmp_path / 'out' / 'lesions.mrk.json').read_text())['markups']
    assert len(markups) == len(result.candidates)
    # the legend names the map where it ends up, not the staging folder it was written in
    legend = json.loads((tmp_path / 'out' / 'lesion_labels.json').read_text())
    assert legend['label_map'] == 'lesion_labels.nii.gz'

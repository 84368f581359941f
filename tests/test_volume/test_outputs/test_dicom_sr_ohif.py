"""The DICOM SR read as OHIF reads it: Node runs ``@cornerstonejs/adapters``'
``MeasurementReport.generateToolState`` (``tools/viewer_checks/hydrate_sr.mjs``) on the SR of
an axial series, an oblique (tilted) axial series and one without FrameOfReferenceUID; every
candidate must come back as a RectangleROI on each source image it spans, with the box's
corners (LPS mm) to 1e-3 mm. A coronally stored series has no source image for an axial
rectangle: its SR holds the exact 3D regions only, which OHIF does not hydrate.

Needs Node and ``npm ci`` in ``tools/viewer_checks`` (``tools/setup_env.sh`` does both);
skipped, said so, where Node cannot be had.
"""
import os
import os.path as osp
import shutil
import subprocess

import numpy as np
import pytest

from helpers.viewer_fixtures import hydrate_sr, node_or_skip
from helpers.volume_fixtures import make_sitk_image, rotation, write_dicom_series
from mp3d_mmdet.volume import (SliceDetections, VolumeDetectionResult, candidate_regions,
                               link_slice_detections, measure_lesion_candidates, read_ct_volume,
                               write_dicom_sr)

pytest.importorskip('highdicom', reason='highdicom not installed (DICOM SR output)')
pydicom = pytest.importorskip('pydicom')

FRAME_UID = '1.2.826.0.1.3680043.2.1125.77.2'


SERIES = {
    'axial': np.eye(3),
    # tilted 0.15 rad about x (a gantry tilt) and 0.1 about z: still stored as axial slices
    'oblique': rotation(2, 0.1) @ rotation(0, 0.15),
    # columns -> L, rows -> I, slices -> P: reoriented to axial slices for the network
    'coronal': np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
}


def _series_result(folder: str, direction: np.ndarray, frame_of_reference: bool = True):
    """A 20 x 16 x 8 series (0.75 mm square pixels, 2 mm slices) and a result with two
    candidates on its axial grid: one over slices 2-4, one on slice 6."""
    hu = np.full((8, 16, 20), 40, np.int16)
    image = make_sitk_image(hu, (0.75, 0.75, 2.0), (-30.5, 12.25, 105.0),
                            tuple(direction.reshape(-1)))
    for path in write_dicom_series(image, folder):
        dataset = pydicom.dcmread(path)
        if frame_of_reference:
            dataset.FrameOfReferenceUID = FRAME_UID
        else:
            del dataset.FrameOfReferenceUID
        dataset.save_as(path, enforce_file_format=True)
    volume = read_ct_volume(folder)
    depth, height, width = volume.hu.shape
    boxes = [np.zeros((0, 4), np.float32) for _ in range(depth)]
    scores = [np.zeros(0, np.float32) for _ in range(depth)]
    for z, box, score in ((2, (3.25, 2.5, 9.75, 8.0), 0.9), (3, (3.0, 2.0, 10.5, 9.5), 0.95),
                          (4, (4.0, 3.0, 9.0, 7.5), 0.7), (6, (1.5, 1.0, 5.5, 4.25), 0.6)):
        if z < depth:
            boxes[z] = np.array([box], np.float32)
            scores[z] = np.array([score], np.float32)
    candidates = measure_lesion_candidates(
        link_slice_detections(boxes, scores, iou_thr=0.3, max_gap=1), volume.geometry,
        volume.original_geometry)
    detections = SliceDetections(boxes, scores, list(range(depth)), 0.5, 'rule',
                                 (width, height), (0.75, 0.75), 0)
    return VolumeDetectionResult(volume=volume, detections=detections, candidates=candidates,
                                 linking=dict(iou_thr=0.3, max_gap=1, min_slices=1),
                                 model=dict(config='cfg.py', checkpoint='ckpt.pth'))


def _image_on_plane(folder: str, point: np.ndarray) -> str:
    """SOP Instance UID of the file whose image plane contains ``point`` (LPS mm)."""
    found = []
    for name in sorted(os.listdir(folder)):
        ds = pydicom.dcmread(osp.join(folder, name), stop_before_pixels=True)
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(cosines[:3], cosines[3:])
        offset = point - np.array([float(v) for v in ds.ImagePositionPatient])
        if abs(offset @ normal) < 1e-4:
            found.append(ds.SOPInstanceUID)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize('kind,frame_of_reference',
                         [('axial', True), ('oblique', True), ('axial', False)])
def test_every_candidate_hydrates_as_rectangles_on_its_images(tmp_path, kind,
                                                              frame_of_reference):
    node = node_or_skip()
    folder = str(tmp_path / 'series')
    result = _series_result(folder, SERIES[kind], frame_of_reference)
    assert not result.volume.reoriented
    sr_path = str(tmp_path / 'lesions_sr.dcm')
    write_dicom_sr(result, sr_path)
    if shutil.which('dciodvfy'):
        run = subprocess.run(['dciodvfy', sr_path], capture_output=True, encoding='utf-8',
                             errors='replace', timeout=60)
        assert 'Error' not in run.stdout + run.stderr, run.stdout + run.stderr
    hydrated = hydrate_sr(node, sr_path, folder)
    assert hydrated['warnings'] == []
    annotations = hydrated['annotations']
    assert {a['toolName'] for a in annotations} == {'RectangleROI'}
    regions = candidate_regions(result)
    assert len(regions) == 2
    geometry = result.volume.geometry
    expected = []
    for region in regions:
        for z in range(region.first_slice, region.last_slice + 1):
            x1, y1, x2, y2 = region.slice_boxes[z]
            corners = geometry.index_to_physical(np.array(
                [[x1, y1, z], [x2, y1, z], [x1, y2, z], [x2, y2, z]], np.float64))
            expected.append((region.candidate_id, z, _image_on_plane(folder, corners.mean(0)),
                             corners))
    assert len(annotations) == len(expected) == 4
    for (candidate_id, z, uid, corners), annotation in zip(expected, annotations):
        assert annotation['sopInstanceUID'] == uid
        assert annotation['referencedImageId'] == f'mp3d:{uid}'
        assert annotation['label'].startswith(f'Lesion candidate {candidate_id} score ')
        assert f'slice {z} ' in annotation['label']
        # handles: top-left, top-right, bottom-left, bottom-right of the box
        np.testing.assert_allclose(annotation['points'], corners, atol=1e-3)


def test_coronal_series_has_only_3d_regions_which_ohif_does_not_hydrate(tmp_path):
    node = node_or_skip()
    folder = str(tmp_path / 'series')
    result = _series_result(folder, SERIES['coronal'])
    assert result.volume.reoriented and result.candidates
    sr_path = str(tmp_path / 'lesions_sr.dcm')
    write_dicom_sr(result, sr_path)
    hydrated = hydrate_sr(node, sr_path, folder)
    assert hydrated == {'annotations': [], 'warnings': []}

"""DICOM SR (TID 1500) of lesion candidates: dciodvfy, highdicom round trip, geometry, errors.

The source is a synthetic CT series stored *coronally* (rows run inferior, slices posterior)
with an oblique tilt and a non-trivial origin and spacing, so that the axial grid the boxes
refer to is a permutation/flip of the stored one: a polygon point at axial-grid index
``(x, y, z)`` lies at stored index ``(i, j, k) = (x, NY - 1 - z, y)``.
"""
import os
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.volume_fixtures import make_sitk_image, rotation, write_dicom_series
from mp3d_mmdet import __version__
from mp3d_mmdet.volume import (CandidateRegion, SliceDetections, VolumeDetectionResult,
                               build_dicom_sr, candidate_regions, link_slice_detections,
                               measure_lesion_candidates, read_ct_volume, write_dicom_sr,
                               write_volume_outputs)
from mp3d_mmdet.volume.outputs import (CORNERSTONE_RECTANGLE, dicom_sr_problem,
                                       writable_output_formats)

hd = pytest.importorskip('highdicom', reason='highdicom not installed (DICOM SR output)')
pydicom = pytest.importorskip('pydicom')

STORED_SIZE = (24, 10, 14)  # (i, j, k): columns, rows (-> 10 axial slices), 14 DICOM files
STORED_SPACING = (0.8, 2.5, 0.9)  # column, row, slice gap: axial grid (0.8, 0.9, 2.5) mm
ORIGIN = (-120.25, 35.5, 410.0)


# coronal: columns -> L, rows -> I, slices -> P; then tilted 0.2 rad about z, 0.08 about x
DIRECTION = rotation(0, 0.08) @ rotation(2, 0.2) @ np.array(
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
NY = STORED_SIZE[1]
STUDY_UID = '1.2.826.0.1.3680043.2.1125.1'
FRAME_UID = '1.2.826.0.1.3680043.2.1125.77.1'


def _stored_index(axial_index: np.ndarray) -> np.ndarray:
    """Axial-grid ``(x, y, z)`` -> stored ``(i, j, k)`` for this series (module docstring)."""
    x, y, z = np.moveaxis(np.asarray(axial_index, np.float64), -1, 0)
    return np.stack([x, NY - 1 - z, y], -1)


def _write_series(folder: str) -> list:
    """The synthetic series, completed with what scanners write (frame of reference, patient
    and study identification, slice thickness, distinct instance UIDs)."""
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1200, size=STORED_SIZE[::-1]).astype(np.int16)
    image = make_sitk_image(hu, STORED_SPACING, ORIGIN, tuple(DIRECTION.reshape(-1)))
    paths = write_dicom_series(image, folder)
    for number, path in enumerate(paths, start=1):
        dataset = pydicom.dcmread(path)
        uid = f'{STUDY_UID}.1.100.{number}'  # the fixture's first UID equals the series UID
        dataset.SOPInstanceUID = uid
        dataset.file_meta.MediaStorageSOPInstanceUID = uid
        dataset.FrameOfReferenceUID = FRAME_UID
        dataset.PositionReferenceIndicator = ''
        dataset.PatientName = 'Phantom^Oblique'
        dataset.PatientID = 'MP3D-0001'
        dataset.PatientBirthDate = '19700101'
        dataset.PatientSex = 'O'
        dataset.StudyID = '42'
        dataset.AccessionNumber = 'ACC42'
        dataset.SeriesNumber = 3
        dataset.SliceThickness = STORED_SPACING[2]
        dataset.save_as(path, enforce_file_format=True)
    return paths


# per-slice boxes on the axial grid (x1, y1, x2, y2); slice 4 bridged by the linking
BOXES_A = {2: (3.25, 2.5, 11.75, 8.0), 3: (2.5, 2.0, 12.5, 9.5), 5: (4.0, 3.0, 10.0, 7.5)}
SCORES_A = {2: 0.71, 3: 0.93, 5: 0.64}
BOX_B, SLICE_B, SCORE_B = (15.5, 6.25, 21.0, 11.5), 8, 0.58


@pytest.fixture(scope='module')
def dicom_result(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('ct') / 'series')
    paths = _write_series(folder)
    volume = read_ct_volume(folder)
    assert volume.source_format == 'dicom' and volume.reoriented
    assert volume.original_geometry.size == STORED_SIZE
    assert volume.geometry.size == (24, 14, 10)
    boxes = [np.zeros((0, 4), np.float32) for _ in range(volume.num_slices)]
    scores = [np.zeros(0, np.float32) for _ in range(volume.num_slices)]
    for z, box in BOXES_A.items():
        boxes[z] = np.array([box], np.float32)
        scores[z] = np.array([SCORES_A[z]], np.float32)
    boxes[SLICE_B] = np.array([BOX_B], np.float32)
    scores[SLICE_B] = np.array([SCORE_B], np.float32)
    detections = SliceDetections(boxes, scores, list(range(volume.num_slices)), 0.5, 'rule',
                                 (24, 14), (0.8, 0.9), 0)
    candidates = measure_lesion_candidates(
        link_slice_detections(boxes, scores, iou_thr=0.3, max_gap=1),
        volume.geometry, volume.original_geometry)
    assert [(c.first_slice, c.last_slice) for c in candidates] == [(2, 5), (8, 8)]
    result = VolumeDetectionResult(
        volume=volume, detections=detections, candidates=candidates,
        linking=dict(iou_thr=0.3, max_gap=1, min_slices=1),
        model=dict(config='configs/tiny.py', checkpoint='work/epoch_24.pth', score_thr=0.5),
        warnings=list(volume.warnings))
    return result, paths


@pytest.fixture(scope='module')
def written(dicom_result, tmp_path_factory):
    result, paths = dicom_result
    path = str(tmp_path_factory.mktemp('sr') / 'lesions_sr.dcm')
    write_dicom_sr(result, path)
    return result, paths, path


def _expected_slice_boxes(z_range, boxes, extent):
    return {z: np.asarray(boxes.get(z, extent), np.float64) for z in z_range}


def test_dciodvfy_finds_no_errors(written):
    if shutil.which('dciodvfy') is None:
        pytest.skip('dciodvfy not installed (Debian package dicom3tools)')
    _, _, path = written
    run = subprocess.run(['dciodvfy', path], capture_output=True, encoding='utf-8',
                         errors='replace', timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    assert 'Comprehensive3DSR' in lines, lines
    errors = [line for line in lines if 'Error' in line]
    assert not errors, '\n'.join(lines)


def test_round_trip_references_and_document(written):
    result, paths, path = written
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    source_uids = {ds.SOPInstanceUID for ds in sources}
    assert len(source_uids) == len(paths)
    # the SR joins the source study and patient
    assert sr.StudyInstanceUID == STUDY_UID
    assert (str(sr.PatientName), sr.PatientID, sr.StudyID, sr.AccessionNumber) == (
        'Phantom^Oblique', 'MP3D-0001', '42', 'ACC42')
    assert sr.SeriesInstanceUID != sources[0].SeriesInstanceUID
    assert sr.CompletionFlag == 'COMPLETE' and sr.VerificationFlag == 'UNVERIFIED'
    # evidence: the source study, series and every instance
    (study,) = sr.CurrentRequestedProcedureEvidenceSequence
    assert study.StudyInstanceUID == STUDY_UID
    (series,) = study.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == result.volume.dicom_series_uid
    assert {item.ReferencedSOPInstanceUID for item in series.ReferencedSOPSequence} == \
        source_uids
    assert {item.ReferencedSOPClassUID for item in series.ReferencedSOPSequence} == \
        {'1.2.840.10008.5.1.4.1.1.2'}
    # the image library lists the instances the candidates' boxes cross: stored slice k is
    # axial y, A spans y 2.0..9.5 and B 6.25..11.5 -> instances k = 2..11 (files 2..11)
    assert _library_uids(sr) == {ds.SOPInstanceUID for ds in sources[2:12]}


def _library_uids(sr):
    """SOP Instance UIDs listed in the SR's TID 1600 Image Library."""
    (library, ) = hd.sr.utils.find_content_items(
        sr, name=pydicom.sr.codedict.codes.DCM.ImageLibrary, recursive=True)
    images = hd.sr.utils.find_content_items(library, value_type=hd.sr.ValueTypeValues.IMAGE,
                                            recursive=True)
    uids = [item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in images]
    assert len(uids) == len(set(uids))
    return set(uids)


def _algorithm(group):
    """TID 4019 ``(name, version, parameters)`` of a measurement group."""
    codes = pydicom.sr.codedict.codes

    def values(code):
        return [item.value for item in hd.sr.utils.find_content_items(group[0], name=code)]

    (name, ), (version, ) = values(codes.DCM.AlgorithmName), values(codes.DCM.AlgorithmVersion)
    return name, version, values(codes.DCM.AlgorithmParameters)


def _groups(sr):
    report = hd.sr.Comprehensive3DSR.from_dataset(sr).content
    volumetric = report.get_volumetric_roi_measurement_groups()
    planar = report.get_planar_roi_measurement_groups()
    return volumetric, planar


def _image_groups(sr):
    """The TID 1501 groups (the 2D rectangles for OHIF)."""
    return hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_image_measurement_groups()


def _value(group, code, derivation=None):
    found = [m for m in group.get_measurements(name=code)
             if derivation is None or m.derivation == derivation]
    assert len(found) == 1
    return found[0]


def test_round_trip_groups_values_and_regions(written):
    result, _, path = written
    sr = hd.sr.srread(path)
    volumetric, planar = _groups(sr)
    assert len(volumetric) == 1 and len(planar) == 1
    codes = pydicom.sr.codedict.codes
    candidate_a, candidate_b = result.candidates
    geometry = result.volume.original_geometry

    # candidate A: slices 2..5 (4 bridged), one polygon per slice in a Volume Surface
    group = volumetric[0]
    assert group.tracking_identifier == 'Lesion candidate 1'
    assert group.finding_type == codes.SCT.Lesion
    surface = group.roi
    assert isinstance(surface, hd.sr.VolumeSurface)
    assert surface.frame_of_reference_uid == FRAME_UID
    assert surface.graphic_type == hd.sr.GraphicTypeValues3D.POLYGON
    assert not surface.has_source_images()
    assert surface.source_series_for_segmentation.value == result.volume.dicom_series_uid
    polygons = surface.graphic_data
    x1 = min(b[0] for b in BOXES_A.values())
    y1 = min(b[1] for b in BOXES_A.values())
    x2 = max(b[2] for b in BOXES_A.values())
    y2 = max(b[3] for b in BOXES_A.values())
    expected = _expected_slice_boxes(range(2, 6), BOXES_A, (x1, y1, x2, y2))
    assert len(polygons) == len(expected)
    for polygon, (z, box) in zip(polygons, sorted(expected.items())):
        corners = np.array([[box[0], box[1], z], [box[2], box[1], z], [box[2], box[3], z],
                            [box[0], box[3], z], [box[0], box[1], z]])
        np.testing.assert_allclose(geometry.physical_to_index(polygon), _stored_index(corners),
                                   atol=1e-3)
    assert _value(group, codes.SCT.LongAxis).value == pytest.approx(candidate_a.long_axis_mm)
    assert _value(group, codes.SCT.ShortAxis).value == pytest.approx(candidate_a.short_axis_mm)
    assert _value(group, codes.SCT.LongAxis).unit == codes.UCUM.Millimeter
    score = _value(group, codes.DCM.CertaintyOfFinding, codes.SCT.Maximum)
    assert score.value == pytest.approx(SCORES_A[3], abs=1e-6)
    assert score.unit.value == '{probability}' and score.unit.scheme_designator == 'UCUM'
    mean = _value(group, codes.DCM.CertaintyOfFinding, codes.SCT.Mean)
    assert mean.value == pytest.approx(np.mean(list(SCORES_A.values())), abs=1e-6)
    # long axis = x side of the best-slice box (slice 3) at 0.8 mm
    assert candidate_a.long_axis_mm == pytest.approx(10.0 * 0.8)
    assert candidate_a.short_axis_mm == pytest.approx(7.5 * 0.9)

    # candidate B: one slice -> planar ROI with one SCOORD3D polygon
    group = planar[0]
    assert group.tracking_identifier == 'Lesion candidate 2'
    assert group.tracking_uid != volumetric[0].tracking_uid
    region = group.roi
    assert isinstance(region, hd.sr.ImageRegion3D)
    assert region.frame_of_reference_uid == FRAME_UID
    x1, y1, x2, y2 = BOX_B
    corners = np.array([[x1, y1, SLICE_B], [x2, y1, SLICE_B], [x2, y2, SLICE_B],
                        [x1, y2, SLICE_B], [x1, y1, SLICE_B]])
    np.testing.assert_allclose(geometry.physical_to_index(region.value), _stored_index(corners),
                               atol=1e-3)
    assert _value(group, codes.SCT.LongAxis).value == pytest.approx(candidate_b.long_axis_mm)
    assert _value(group, codes.SCT.ShortAxis).value == pytest.approx(candidate_b.short_axis_mm)
    assert _value(group, codes.DCM.CertaintyOfFinding, codes.SCT.Maximum).value == \
        pytest.approx(SCORE_B, abs=1e-6)


def test_polygons_match_sitk_physical_points(written):
    """The stored-index expectation itself, checked against ITK's own index -> physical map
    of the series as written."""
    _, _, path = written
    image = make_sitk_image(np.zeros(STORED_SIZE[::-1], np.int16), STORED_SPACING, ORIGIN,
                            tuple(DIRECTION.reshape(-1)))
    _, planar = _groups(hd.sr.srread(path))
    x1, y1 = BOX_B[:2]
    expected = image.TransformContinuousIndexToPhysicalPoint(
        [float(v) for v in _stored_index(np.array([x1, y1, SLICE_B]))])
    np.testing.assert_allclose(planar[0].roi.value[0], expected, atol=1e-3)


def test_algorithm_identification(written):
    _, _, path = written
    sr = hd.sr.srread(path)
    volumetric, planar = _groups(sr)
    for group in volumetric + planar:
        assert _algorithm(group) == ('mp3d_mmdet', __version__, [
            'config=configs/tiny.py', 'checkpoint=work/epoch_24.pth', 'score_thr=0.5'])
        for measurement in group.get_measurements():
            assert _algorithm(measurement)[:2] == ('mp3d_mmdet', __version__)
    assert sr.ManufacturerModelName == 'mp3d_mmdet' and sr.SoftwareVersions == __version__


def test_custom_regions_name_and_version(dicom_result, tmp_path):
    result, _ = dicom_result
    region = candidate_regions(result)[1]
    path = str(tmp_path / 'one.dcm')
    write_dicom_sr(result, path, regions=[region], algorithm_name='lesion-ai',
                   algorithm_version='9.9')
    volumetric, planar = _groups(hd.sr.srread(path))
    assert volumetric == [] and len(planar) == 1
    assert planar[0].tracking_identifier == 'Lesion candidate 2'
    assert _algorithm(planar[0])[:2] == ('lesion-ai', '9.9')


def test_hand_made_region_and_no_candidates(dicom_result, tmp_path):
    result, _ = dicom_result
    box = np.array([1.0, 2.0, 2.5, 5.0, 6.0, 4.5])  # slices 3..4
    region = CandidateRegion(
        candidate_id=7, score=0.8125, mean_score=0.75, first_slice=3, last_slice=4,
        best_slice=3, box_index=box, corners_lps_mm=np.zeros((8, 3)),
        center_lps_mm=np.zeros(3), axes_lps=np.eye(3), size_mm=np.ones(3),
        long_axis_mm=12.5, short_axis_mm=3.25,
        slice_boxes={3: np.array([1.0, 2.0, 5.0, 6.0]), 4: np.array([1.5, 2.5, 4.0, 5.0])})
    sr = build_dicom_sr(result, [region])
    (group,), _ = _groups(sr)
    assert group.tracking_identifier == 'Lesion candidate 7'
    top = group.roi.graphic_data[1]
    np.testing.assert_allclose(result.volume.geometry.physical_to_index(top)[:4],
                               [[1.5, 2.5, 4], [4.0, 2.5, 4], [4.0, 5.0, 4], [1.5, 5.0, 4]],
                               atol=1e-3)
    # no candidates: a valid report stating that no lesion was found
    path = str(tmp_path / 'none.dcm')
    write_dicom_sr(result, path, regions=[])
    sr = hd.sr.srread(path)
    assert _groups(sr) == ([], [])
    (group, ) = sr.content.get_image_measurement_groups()
    assert group.tracking_identifier == 'No lesion candidates'
    assert len(_library_uids(sr)) == STORED_SIZE[2]  # no candidate: every instance
    if shutil.which('dciodvfy'):
        run = subprocess.run(['dciodvfy', path], capture_output=True, encoding='utf-8',
                             errors='replace', timeout=60)
        assert 'Error' not in run.stdout + run.stderr


def test_non_dicom_input_is_refused(tmp_path):
    hu = np.full((5, 12, 10), 40, np.int16)
    path = str(tmp_path / 'ct.nii.gz')
    sitk.WriteImage(make_sitk_image(hu, (0.8, 0.8, 2.5)), path)
    volume = read_ct_volume(path)
    result = VolumeDetectionResult(
        volume=volume, detections=None, candidates=[], linking={}, model={})
    out = str(tmp_path / 'sr.dcm')
    with pytest.raises(ValueError) as error:
        write_dicom_sr(result, out)
    assert str(error.value) == f'dicom-sr needs a DICOM series input, got nifti {path}'
    assert not os.path.exists(out)


def _series_without_frame_of_reference(folder, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    hu = np.full((3, 12, 10), 40, np.int16)
    for path in write_dicom_series(make_sitk_image(hu, (0.8, 0.8, 2.5), direction=direction),
                                   folder):
        dataset = pydicom.dcmread(path)
        del dataset.FrameOfReferenceUID
        dataset.save_as(path)
    volume = read_ct_volume(folder)
    boxes = [np.zeros((0, 4), np.float32) for _ in range(volume.num_slices)]
    scores = [np.zeros(0, np.float32) for _ in range(volume.num_slices)]
    boxes[1], scores[1] = np.array([[2, 3, 6, 8]], np.float32), np.array([0.9], np.float32)
    detections = SliceDetections(boxes, scores, list(range(volume.num_slices)), 0.5, 'rule',
                                 (10, 12), (0.8, 0.8), 0)
    return VolumeDetectionResult(
        volume=volume, detections=detections, linking={}, model={},
        candidates=measure_lesion_candidates(link_slice_detections(boxes, scores),
                                             volume.geometry, volume.original_geometry))


def test_series_without_frame_of_reference_gets_the_2d_groups_only(tmp_path):
    result = _series_without_frame_of_reference(str(tmp_path / 'nofor'))
    assert dicom_sr_problem(result.volume) is None
    path = str(tmp_path / 'sr.dcm')
    write_dicom_sr(result, path)
    sr = hd.sr.srread(path)
    assert _groups(sr) == ([], [])
    (group, ) = _image_groups(sr)
    assert group.tracking_identifier == CORNERSTONE_RECTANGLE
    if shutil.which('dciodvfy'):
        run = subprocess.run(['dciodvfy', path], capture_output=True, encoding='utf-8',
                             errors='replace', timeout=60)
        assert 'Error' not in run.stdout + run.stderr, run.stdout + run.stderr


def test_reoriented_series_without_frame_of_reference_is_refused(tmp_path):
    """Stored coronally and without a frame of reference: neither 3D coordinates nor a
    source image for an axial rectangle."""
    folder = str(tmp_path / 'nofor')
    result = _series_without_frame_of_reference(folder, (1, 0, 0, 0, 0, 1, 0, -1, 0))
    assert result.volume.reoriented
    problem = dicom_sr_problem(result.volume)
    assert problem == (f'{folder}: series {result.volume.dicom_series_uid} has no '
                       'FrameOfReferenceUID (0020,0052) and is not stored as axial slices: '
                       'the SR has neither 3D patient coordinates nor source images to draw on')
    with pytest.raises(ValueError) as error:
        write_dicom_sr(result, str(tmp_path / 'sr.dcm'))
    assert str(error.value) == problem
    assert os.listdir(tmp_path) == ['nofor']
    # asked for explicitly: refused (before inference, by the CLI); by default: skipped
    with pytest.raises(ValueError, match='^dicom-sr cannot be written: '):
        writable_output_formats(result.volume, ('slicer', 'dicom-sr'), explicit=True)
    assert writable_output_formats(result.volume, ('slicer', 'dicom-sr')) == (
        ('slicer', ), f'no DICOM SR written: {problem}')
    # the writers never lose a finished inference to it: one warning, every other file
    with pytest.warns(UserWarning) as caught:
        paths = write_volume_outputs(result, str(tmp_path / 'out'), top_k_overlays=0,
                                     formats=('slicer', 'dicom-sr'))
    assert [str(w.message) for w in caught] == [f'no DICOM SR written: {problem}']
    assert 'dicom-sr' not in paths and os.path.isfile(paths['slicer'])
    assert not os.path.exists(str(tmp_path / 'out' / 'lesions_sr.dcm'))
    assert result.warnings[-1] == f'no DICOM SR written: {problem}'


def test_minimal_source_series_other_files_and_series(tmp_path):
    """A series with only what GDCM writes plus a Frame of Reference (empty patient/study
    attributes, no SliceThickness), next to a second series and a text file: the SR
    references exactly the series read, and still validates."""
    folder = str(tmp_path / 'mixed')
    read_paths = write_dicom_series(make_sitk_image(np.full((4, 12, 10), 40, np.int16),
                                                    (0.8, 0.8, 2.5), (5.0, -7.0, 30.0)), folder)
    write_dicom_series(make_sitk_image(np.full((2, 12, 10), 40, np.int16), (0.8, 0.8, 2.5)),
                       folder, series_number=2)
    for path in read_paths:
        dataset = pydicom.dcmread(path)
        dataset.FrameOfReferenceUID = FRAME_UID
        dataset.save_as(path, enforce_file_format=True)
    with open(os.path.join(folder, 'readme.txt'), 'w') as handle:
        handle.write('not dicom')
    volume = read_ct_volume(folder)
    boxes = [np.zeros((0, 4), np.float32) for _ in range(4)]
    scores = [np.zeros(0, np.float32) for _ in range(4)]
    boxes[1], scores[1] = np.array([[2, 3, 6, 8]], np.float32), np.array([0.9], np.float32)
    result = VolumeDetectionResult(
        volume=volume, detections=None,
        candidates=measure_lesion_candidates(link_slice_detections(boxes, scores),
                                             volume.geometry), linking={}, model={})
    path = str(tmp_path / 'sr.dcm')
    write_dicom_sr(result, path)
    sr = hd.sr.srread(path)
    (series, ) = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert series.SeriesInstanceUID == volume.dicom_series_uid
    expected = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in read_paths}
    assert {item.ReferencedSOPInstanceUID for item in series.ReferencedSOPSequence} == expected
    # the candidate lies on axial slice 1 = stored slice 1 (not reoriented)
    first = pydicom.dcmread(read_paths[1], stop_before_pixels=True)
    assert _library_uids(sr) == {first.SOPInstanceUID}
    assert sr.PatientID == '' and sr.StudyID == ''
    (group, ) = _groups(sr)[1]
    np.testing.assert_allclose(volume.geometry.physical_to_index(group.roi.value),
                               [[2, 3, 1], [6, 3, 1], [6, 8, 1], [2, 8, 1], [2, 3, 1]],
                               atol=1e-3)
    # and as a 2D rectangle on that image, (column, row) = index + 0.5, under each
    # measurement (where the adapters OHIF uses look for it)
    (group, ) = _image_groups(sr)
    assert group.tracking_identifier == CORNERSTONE_RECTANGLE
    measurements = group.get_measurements()
    assert [m.name.meaning for m in measurements] == ['Long axis', 'Short axis'] + [
        'Certainty of Finding'] * 2
    assert [m.value for m in measurements[:2]] == pytest.approx([5 * 0.8, 4 * 0.8])
    for measurement in measurements:
        (scoord, ) = [item for item in measurement[0].ContentSequence
                      if item.ValueType == 'SCOORD']
        assert scoord.GraphicType == 'POLYLINE'
        np.testing.assert_allclose(np.reshape(scoord.GraphicData, (-1, 2)),
                                   [[2.5, 3.5], [6.5, 3.5], [6.5, 8.5], [2.5, 8.5], [2.5, 3.5]],
                                   atol=1e-4)
        (image, ) = scoord.ContentSequence
        assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    (comment, ) = [item for item in group[0].ContentSequence if item.ValueType == 'TEXT'
                   and item.ConceptNameCodeSequence[0].CodeMeaning == 'Comment']
    assert comment.TextValue == 'Lesion candidate 1 score 0.90 slice 1 (1-1)'
    if shutil.which('dciodvfy'):
        run = subprocess.run(['dciodvfy', path], capture_output=True, encoding='utf-8',
                             errors='replace', timeout=60)
        assert 'Error' not in run.stdout + run.stderr, run.stdout + run.stderr


def test_failed_write_leaves_nothing(dicom_result, tmp_path, monkeypatch):
    result, _ = dicom_result
    path = tmp_path / 'sr.dcm'
    path.write_bytes(b'previous')

    def broken_save(self, handle, **kwargs):
        handle.write(b'DICM partial')
        raise OSError('disk full')

    monkeypatch.setattr(hd.sr.Comprehensive3DSR, 'save_as', broken_save)
    with pytest.raises(OSError, match='disk full'):
        write_dicom_sr(result, str(path))
    assert path.read_bytes() == b'previous'
    assert sorted(os.listdir(tmp_path)) == ['sr.dcm']


def test_source_headers_are_not_modified(tmp_path):
    """The headers given as ``source`` (or read) are left as they were, even where the SR
    needs filled-in copies (empty patient attributes, no slice thickness)."""
    folder = str(tmp_path / 'plain')
    paths = write_dicom_series(make_sitk_image(np.full((3, 12, 10), 40, np.int16),
                                               (0.8, 0.8, 2.5)), folder)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.FrameOfReferenceUID = FRAME_UID
        del dataset.PatientID
        dataset.save_as(path, enforce_file_format=True)
    volume = read_ct_volume(folder)
    source = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    before = [ds.to_json_dict() for ds in source]
    result = VolumeDetectionResult(volume=volume, detections=None, candidates=[], linking={},
                                   model={})
    sr = build_dicom_sr(result, [], source=source)
    assert 'PatientID' in sr and not sr.PatientID  # Type 2: present, empty
    assert [ds.to_json_dict() for ds in source] == before

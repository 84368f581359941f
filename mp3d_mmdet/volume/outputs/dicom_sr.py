"""Lesion candidates as a DICOM Structured Report (TID 1500 Measurement Report), via highdicom.

:func:`write_dicom_sr` writes one Comprehensive 3D SR document for a detection result whose
input was a DICOM series (:attr:`CTVolume.source_format` ``'dicom'``), read by OHIF (its
``@cornerstonejs/adapters`` hydrate the 2D groups as editable RectangleROI annotations) and
by 3D-aware readers (the 3D groups):

* **Source references** (:mod:`.dicom_sources`). The series' headers are read again from
  :attr:`CTVolume.source_path`. Patient and study attributes are copied from them (the SR
  joins the source study; a Type 2 attribute absent from the source is written empty),
  every instance is listed in the Current Requested Procedure Evidence Sequence, and each
  3D region names the source series (``Source series for segmentation``). The TID 1600
  Image Library lists the instances whose image plane crosses a reported candidate's 3D box
  (all instances when no candidate is reported).
* **Measurements** of a candidate (:class:`~mp3d_mmdet.volume.CandidateRegion`, best first):
  ``(103339001, SCT, "Long axis")`` and ``(103340004, SCT, "Short axis")`` in ``mm``, the
  sides of a box (box extent, not RECIST); ``(111012, DCM, "Certainty of Finding")`` in
  ``{probability}``, the detector's score, with derivation ``(56851009, SCT, "Maximum")``
  (the candidate's score) and ``(373098007, SCT, "Mean")`` (its mean score); a score in
  [0, 1], not a calibrated probability. Finding type ``(52988006, SCT, "Lesion")``.
* **The 3D group** of a candidate (only where the series has a FrameOfReferenceUID):
  tracking identifier ``Lesion candidate <id>``, finding category ``(49755003, SCT,
  "Morphologically abnormal structure")``, the sides of the best-slice box and both
  scores. The candidate's box on each axial slice it spans (``slice_boxes``: axial-grid z ->
  ``[x1, y1, x2, y2]``, box edges in continuous indices) is the closed SCOORD3D POLYGON
  ``(x1, y1, z) -> (x2, y1, z) -> (x2, y2, z) -> (x1, y2, z) -> (x1, y1, z)`` in patient
  coordinates (LPS mm, :meth:`VolumeGeometry.index_to_physical`), exact whatever the
  orientation the series was stored in. Several slices: a **TID 1411 Volumetric ROI**
  whose ``Volume Surface`` is that set of parallel polygons; one slice: a **TID 1410 Planar
  ROI** whose ``Image Region`` is the one polygon.
* **The 2D groups** of a candidate: one **TID 1501 Measurement Group** per slice it spans
  whose axial-grid slice is a source image (:func:`~.dicom_sources.slice_images`: every
  slice of a series stored axially, oblique or not; none of a series stored coronally or
  sagittally, which OHIF then cannot show), built as Cornerstone writes its own: tracking
  identifier ``Cornerstone3DTools@^0.1.0:RectangleROI`` (:data:`CORNERSTONE_RECTANGLE`: the
  adapters choose their RectangleROI tool by it and OHIF makes the annotation editable), a
  tracking UID of its own per group (OHIF merges groups sharing one), the sides of that
  slice's box and both scores as measurements, each inferred from the box as a closed
  5-point 2D SCOORD POLYLINE on that image (corners in the cyclic order above), and a
  ``(121106, DCM, "Comment")`` text ``Lesion candidate <id> score <s> slice <z>
  (<first>-<last>)`` (the adapters' annotation label). Why this shape: the adapters take
  the region from under the group's first NUM item when it has one, and TID 1410 (a
  planar ROI group) does not allow a measurement its own coordinates, so a TID 1410 group
  could carry no measurement there. The 3D description lives in its own group because the
  adapters prefer a group's SCOORD3D to its SCOORD: in one group it would hide the 2D
  rectangle from OHIF.
* **Algorithm.** TID 4019 Algorithm Identification (name, version, parameters ``config=``,
  ``checkpoint=``, ``score_thr=`` from :attr:`VolumeDetectionResult.model`) in every
  measurement group and measurement; the observer is a device (TID 1004) named after the
  algorithm; the SR's Manufacturer Model Name / Software Versions name it too.
* **No candidates**: one TID 1501 group (tracking identifier ``No lesion candidates``) with
  the qualitative evaluation ``Lesion = Absent`` (SCT 272519000), since TID 1500 needs at
  least one measurement group.

A series without FrameOfReferenceUID gets the 2D groups only; one that has neither a frame
of reference nor axial source images gets no SR (:func:`~.dicom_sources.dicom_sr_problem`
says so before inference). The document is ``COMPLETE``, ``PRELIMINARY`` (an unverified
algorithm output) and ``UNVERIFIED``, written with Explicit VR Little Endian, whole or not at
all (:func:`mp3d_mmdet.utils.safe_files.atomic_write`). It can be read back with
``highdicom.sr.srread``.
"""
import copy
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from ...utils.safe_files import atomic_write
from ...version import __version__
from .dicom_sources import (dicom_sr_problem, frame_of_reference_uid, image_points,
                            read_source_series, slice_images)
from .regions import CandidateRegion, candidate_regions
from ..io.ct_volume import CTVolume
from ..inference.detection import VolumeDetectionResult

if TYPE_CHECKING:  # imported when writing only
    import highdicom
    import pydicom

__all__ = ['write_dicom_sr', 'build_dicom_sr', 'read_source_series', 'dicom_sr_problem',
           'SR_SERIES_NUMBER', 'CORNERSTONE_RECTANGLE']

#: Series Number of the SR document's series.
SR_SERIES_NUMBER = 9001
#: Tracking identifier by which Cornerstone3D's SR adapters (OHIF) pick their RectangleROI tool.
CORNERSTONE_RECTANGLE = 'Cornerstone3DTools@^0.1.0:RectangleROI'

# Type 2 patient / study attributes highdicom copies from the first source instance.
_TYPE2_SOURCE_ATTRIBUTES = ('PatientID', 'PatientName', 'PatientBirthDate', 'PatientSex',
                            'AccessionNumber', 'StudyID', 'StudyDate', 'StudyTime',
                            'ReferringPhysicianName')
# What highdicom's TID 1604 image library descriptors read from a CT image.
_LIBRARY_ATTRIBUTES = ('PixelSpacing', 'ImageOrientationPatient', 'ImagePositionPatient',
                       'SliceThickness')


def _codes():
    """The coded concepts used (built lazily: highdicom is imported only when writing)."""
    from pydicom.sr.coding import Code
    return dict(
        lesion=Code('52988006', 'SCT', 'Lesion'),
        abnormal_structure=Code('49755003', 'SCT', 'Morphologically abnormal structure'),
        long_axis=Code('103339001', 'SCT', 'Long axis'),
        short_axis=Code('103340004', 'SCT', 'Short axis'),
        certainty=Code('111012', 'DCM', 'Certainty of Finding'),
        maximum=Code('56851009', 'SCT', 'Maximum'),
        mean=Code('373098007', 'SCT', 'Mean'),
        comment=Code('121106', 'DCM', 'Comment'),
        absent=Code('272519000', 'SCT', 'Absent'),
        mm=Code('mm', 'UCUM', 'mm'),
        probability=Code('{probability}', 'UCUM', 'probability'),
        ct_procedure=Code('25045-6', 'LN', 'CT unspecified body region'),
        device=Code('121007', 'DCM', 'Device'))


def _with_patient_and_study(dataset: 'pydicom.Dataset') -> 'pydicom.Dataset':
    """A copy of ``dataset`` (a header: a deep copy is cheap; pydicom's shallow copies share
    their elements) with every absent Type 2 patient/study attribute present and empty
    (highdicom reads them from the first evidence instance)."""
    first = copy.deepcopy(dataset)
    for keyword in _TYPE2_SOURCE_ATTRIBUTES:
        if keyword not in first:
            setattr(first, keyword, None)
    return first


def _library_view(dataset: 'pydicom.Dataset') -> 'pydicom.Dataset':
    """``dataset`` for highdicom's image library; if it lacks a value its CT descriptors
    (TID 1604: pixel spacing, orientation, position, slice thickness) need, a copy whose
    Modality is ``'OT'``, so that the entry keeps the coded modality (from the SOP class),
    frame of reference, rows and columns and leaves those descriptors out."""
    if all(dataset.get(keyword) not in (None, '') for keyword in _LIBRARY_ATTRIBUTES):
        return dataset
    view = copy.deepcopy(dataset)
    view.Modality = 'OT'
    return view


def _library_images(source: Sequence['pydicom.Dataset'], regions: Sequence[CandidateRegion],
                    volume: CTVolume) -> List['pydicom.Dataset']:
    """The source instances whose plane crosses a region's 3D box (all if no region).

    An instance's plane is at stored slice index ``k`` = the third continuous index of its
    ImagePositionPatient in :attr:`CTVolume.original_geometry`; a box (its 8 corners,
    :attr:`CandidateRegion.corners_lps_mm`, mapped to the stored grid) covers
    ``k_min <= k <= k_max``.
    """
    if not regions:
        return list(source)
    to_stored = volume.original_geometry.physical_to_index
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source])
    planes = to_stored(positions)[:, 2]
    crossed = np.zeros(len(source), dtype=bool)
    for region in regions:
        k = to_stored(region.corners_lps_mm)[:, 2]
        crossed |= (planes >= k.min() - 1e-6) & (planes <= k.max() + 1e-6)
    return [ds for ds, keep in zip(source, crossed) if keep]


def _slice_rectangles(region: CandidateRegion) -> List[tuple]:
    """``(z, corners)`` per slice of the region, in slice order; ``corners`` ``(5, 3)`` is the
    closed rectangle ``(x1, y1, z) -> (x2, y1, z) -> (x2, y2, z) -> (x1, y2, z) -> (x1, y1,
    z)`` in axial-grid continuous indices."""
    rectangles = []
    for z in range(region.first_slice, region.last_slice + 1):
        box = region.slice_boxes.get(z)
        if box is None:  # not expected: slice_boxes spans first..last
            box = region.box_index[[0, 1, 3, 4]]
        x1, y1, x2, y2 = (float(v) for v in box)
        rectangles.append((z, np.array([[x1, y1, z], [x2, y1, z], [x2, y2, z], [x1, y2, z],
                                        [x1, y1, z]], np.float64)))
    return rectangles


def _algorithm_parameters(model: Dict) -> List[str]:
    parameters = []
    for key in ('config', 'checkpoint', 'score_thr', 'precision'):
        if model.get(key) is not None:
            parameters.append(f'{key}={model[key]}')
    return parameters


def _measurements(code: Dict, algorithm, region: CandidateRegion, long_mm: float,
                  short_mm: float, coordinates=None) -> list:
    """Long/short axis (``long_mm``, ``short_mm``) and the two scores, each with the optional
    ``Source of measurement`` SCOORD ``coordinates``."""
    import highdicom as hd
    where = dict(algorithm_id=algorithm,
                 referenced_coordinates=None if coordinates is None else [coordinates])
    return [
        hd.sr.Measurement(name=code['long_axis'], value=float(long_mm), unit=code['mm'],
                          **where),
        hd.sr.Measurement(name=code['short_axis'], value=float(short_mm), unit=code['mm'],
                          **where),
        hd.sr.Measurement(name=code['certainty'], value=float(region.score),
                          unit=code['probability'], derivation=code['maximum'], **where),
        hd.sr.Measurement(name=code['certainty'], value=float(region.mean_score),
                          unit=code['probability'], derivation=code['mean'], **where)]


def _group_3d(code: Dict, algorithm, region: CandidateRegion, volume: CTVolume,
              frame_of_reference: str, uid: str):
    """The candidate's 3D group (module docstring)."""
    import highdicom as hd
    polygons = [volume.geometry.index_to_physical(corners)
                for _, corners in _slice_rectangles(region)]
    common = dict(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=uid, identifier=f'Lesion candidate {region.candidate_id}'),
        finding_type=code['lesion'], finding_category=code['abnormal_structure'],
        algorithm_id=algorithm,
        measurements=_measurements(code, algorithm, region, region.long_axis_mm,
                                   region.short_axis_mm))
    if len(polygons) >= 2:
        surface = hd.sr.VolumeSurface(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=polygons,
            frame_of_reference_uid=frame_of_reference,
            source_series=hd.sr.SourceSeriesForSegmentation(volume.dicom_series_uid))
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_volume_surface=surface, **common)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=polygons[0],
            frame_of_reference_uid=frame_of_reference), **common)


def _groups_2d(code: Dict, algorithm, region: CandidateRegion, volume: CTVolume,
               images: Dict[int, 'pydicom.Dataset'], uid_base: str) -> list:
    """The candidate's 2D groups, one per slice that is a source image (module docstring)."""
    import highdicom as hd
    from pydicom.uid import generate_uid
    sx, sy, _ = volume.spacing
    groups = []
    for z, corners in _slice_rectangles(region):
        image = images.get(z)
        if image is None:
            continue
        points = image_points(image, volume.geometry.index_to_physical(corners))
        region_on_image = hd.sr.CoordinatesForMeasurement(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=points,
            source_image=hd.sr.SourceImageForRegion(str(image.SOPClassUID),
                                                    str(image.SOPInstanceUID)))
        sides = sorted([(corners[1, 0] - corners[0, 0]) * sx,
                        (corners[2, 1] - corners[1, 1]) * sy])
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(entropy_srcs=[uid_base, str(z)]),
                identifier=CORNERSTONE_RECTANGLE),
            finding_type=code['lesion'], algorithm_id=algorithm,
            measurements=_measurements(code, algorithm, region, sides[1], sides[0],
                                       region_on_image))
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=code['comment'], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            value=(f'Lesion candidate {region.candidate_id} score {region.score:.2f} slice {z} '
                   f'({region.first_slice}-{region.last_slice})')))
        groups.append(group)
    return groups


def build_dicom_sr(result: VolumeDetectionResult, regions: Sequence[CandidateRegion],
                   algorithm_name: str = 'mp3d_mmdet',
                   algorithm_version: Optional[str] = None,
                   source: Optional[Sequence['pydicom.Dataset']] = None
                   ) -> 'highdicom.sr.Comprehensive3DSR':
    """The SR document of :func:`write_dicom_sr` (content: module docstring), not written.

    Args:
        result: a result whose volume was read from a DICOM series.
        regions: the candidates to report, in report order.
        algorithm_name: TID 4019 algorithm name.
        algorithm_version: TID 4019 version; None = ``mp3d_mmdet.__version__``.
        source: the source series' headers; None = read with :func:`read_source_series`.

    Returns:
        highdicom.sr.Comprehensive3DSR: the document (new random SOP/series instance UIDs).

    Raises:
        ValueError: no SR can be written (:func:`dicom_sr_problem`'s reason).
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    volume = result.volume
    if volume.source_format != 'dicom':
        raise ValueError(dicom_sr_problem(volume))
    if source is None:
        source = read_source_series(volume.source_path, volume.dicom_series_uid)
    source = list(source)
    frame_of_reference = frame_of_reference_uid(source)
    images = slice_images(volume, source)
    if frame_of_reference is None and not images:
        raise ValueError(dicom_sr_problem(volume))
    version = algorithm_version if algorithm_version is not None else __version__
    code = _codes()
    sop_instance_uid = generate_uid()

    algorithm = hd.sr.AlgorithmIdentification(
        name=algorithm_name, version=str(version),
        parameters=_algorithm_parameters(result.model) or None)
    groups = []
    for region in regions:
        uid_base = [sop_instance_uid, 'candidate', str(region.candidate_id)]
        if frame_of_reference is not None:
            groups.append(_group_3d(code, algorithm, region, volume, frame_of_reference,
                                    generate_uid(entropy_srcs=uid_base)))
        groups.extend(_groups_2d(code, algorithm, region, volume, images,
                                 '/'.join(uid_base + ['2d'])))
    if not groups:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(entropy_srcs=[sop_instance_uid, 'none']),
                identifier='No lesion candidates'),
            finding_type=code['lesion'], algorithm_id=algorithm,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                name=code['lesion'], value=code['absent'])]))

    observer = hd.sr.ObserverContext(
        observer_type=code['device'],
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=['mp3d_mmdet device', algorithm_name, str(version)]),
            name=algorithm_name, model_name=algorithm_name))
    library = [_library_view(ds) for ds in _library_images(source, regions, volume)]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=code['ct_procedure'], imaging_measurements=groups,
        referenced_images=library or None)
    evidence = [_with_patient_and_study(source[0])] + source[1:]
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=sop_instance_uid, instance_number=1,
        manufacturer='mp3d_mmdet', manufacturer_model_name=algorithm_name,
        software_versions=str(version), series_description='MP3D lesion candidates',
        is_complete=True, is_final=False, is_verified=False)


def write_dicom_sr(result: VolumeDetectionResult, path: str,
                   regions: Optional[List[CandidateRegion]] = None,
                   algorithm_name: str = 'mp3d_mmdet',
                   algorithm_version: Optional[str] = None) -> None:
    """Write the candidates of a DICOM-series result as a TID 1500 DICOM SR file.

    Content and conventions: module docstring. The file is written whole or not at all (a
    temporary file in the same folder, renamed into place).

    Args:
        result: a result whose volume was read from a DICOM series
            folder (the folder is read again for the source instances' headers).
        path: the ``.dcm`` file to write; its folder must exist.
        regions: the candidates to report, in report order;
            None = :func:`candidate_regions` ``(result)`` (all candidates, best first).
        algorithm_name: TID 4019 algorithm name (also the observer device's name).
        algorithm_version: TID 4019 version; None = ``mp3d_mmdet.__version__``.

    Raises:
        ValueError: no SR can be written (:func:`dicom_sr_problem`'s reason: not a DICOM
            series, instances not found, neither a Frame of Reference nor axial images).
        ImportError: highdicom is not installed.
    """
    if result.volume.source_format != 'dicom':
        raise ValueError(dicom_sr_problem(result.volume))
    if regions is None:
        regions = candidate_regions(result)
    document = build_dicom_sr(result, regions, algorithm_name, algorithm_version)
    with atomic_write(path, 'wb') as handle:
        document.save_as(handle, enforce_file_format=True)

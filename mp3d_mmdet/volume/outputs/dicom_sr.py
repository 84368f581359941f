"""Lesion candidates as a DICOM Structured Report (TID 1500 Measurement Report), via highdicom.

:func:`write_dicom_sr` writes one Comprehensive 3D SR document for a detection result whose
input was a DICOM series (:attr:`CTVolume.source_format` ``'dicom'``):

* **Source references.** The series' files are read again with pydicom (headers only) from
  :attr:`CTVolume.source_path`, keeping the instances of :attr:`CTVolume.dicom_series_uid`.
  Patient and study attributes are copied from them (the SR joins the source study; a Type 2
  attribute absent from the source is written empty), every instance is listed in the
  Current Requested Procedure Evidence Sequence, and each region names the source series
  (``Source series for segmentation``). The TID 1600 Image Library lists the instances
  whose image plane crosses a reported candidate's 3D box (all instances when no candidate
  is reported), which keeps the writing time independent of the series' length (highdicom
  builds each library entry from the image's header).
* **One measurement group per candidate** (:class:`~mp3d_mmdet.volume.CandidateRegion`, best
  first), with a Tracking Identifier (``Lesion candidate <id>``) and a Tracking Unique
  Identifier (a UID derived from the SR's SOP Instance UID and the candidate id), finding
  type ``(52988006, SCT, "Lesion")``, finding category ``(49755003, SCT, "Morphologically
  abnormal structure")`` and the measurements

  - ``(103339001, SCT, "Long axis")`` and ``(103340004, SCT, "Short axis")`` in ``mm``: the
    sides of the best-slice box (box extent, not RECIST);
  - ``(111012, DCM, "Certainty of Finding")`` in ``{probability}``: the detector's score,
    once with derivation ``(56851009, SCT, "Maximum")`` (the candidate's score) and once with
    ``(373098007, SCT, "Mean")`` (its mean score); a score in [0, 1], not a calibrated
    probability.

  **Region.** The candidate's box on each axial slice it spans (``slice_boxes``: axial-grid
  z -> ``[x1, y1, x2, y2]``, box edges in continuous indices) becomes a closed rectangle in
  the plane of that slice: the SCOORD3D POLYGON ``(x1, y1, z) -> (x2, y1, z) -> (x2, y2, z)
  -> (x1, y2, z) -> (x1, y1, z)`` mapped to patient coordinates (LPS mm, the source's Frame
  of Reference) with :meth:`VolumeGeometry.index_to_physical`. SCOORD3D in the frame of
  reference (not 2D SCOORD on an image) keeps the region exact when the series was stored
  in another orientation and reoriented to axial slices, since an axial-grid slice is then
  not one source image. A candidate spanning several slices is a **TID 1411 Volumetric ROI**
  whose ``Volume Surface`` is that set of parallel planar polygons (TID 1411 allows a 3D
  region only as a Volume Surface; a POLYGON surface needs two or more contours); a
  candidate on one slice is a **TID 1410 Planar ROI** whose ``Image Region`` is the one
  SCOORD3D polygon.
* **Algorithm.** TID 4019 Algorithm Identification (name, version, parameters ``config=``,
  ``checkpoint=``, ``score_thr=`` from :attr:`VolumeDetectionResult.model`) in every
  measurement group and measurement; the observer is a device (TID 1004) named after the
  algorithm; the SR's Manufacturer Model Name / Software Versions name it too.
* **No candidates**: one TID 1501 group (tracking identifier ``No lesion candidates``) with
  the qualitative evaluation ``Lesion = Absent`` (SCT 272519000), since TID 1500 needs at
  least one measurement group.

The document is ``COMPLETE``, ``PRELIMINARY`` (an unverified algorithm output) and
``UNVERIFIED``, written with Explicit VR Little Endian, whole or not at all
(:func:`mp3d_mmdet.utils.safe_files.atomic_write`). It can be read back with
``highdicom.sr.srread``.
"""
import copy
import os
import os.path as osp
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from ...utils.safe_files import atomic_write
from ...version import __version__
from .regions import CandidateRegion, candidate_regions
from ..io.ct_volume import CTVolume, VolumeGeometry
from ..inference.detection import VolumeDetectionResult

if TYPE_CHECKING:  # imported when writing only
    import highdicom
    import pydicom

__all__ = ['write_dicom_sr', 'build_dicom_sr', 'read_source_series', 'SR_SERIES_NUMBER']

#: Series Number of the SR document's series.
SR_SERIES_NUMBER = 9001

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
        absent=Code('272519000', 'SCT', 'Absent'),
        mm=Code('mm', 'UCUM', 'mm'),
        probability=Code('{probability}', 'UCUM', 'probability'),
        ct_procedure=Code('25045-6', 'LN', 'CT unspecified body region'),
        device=Code('121007', 'DCM', 'Device'))


def read_source_series(folder: str, series_uid: str) -> List['pydicom.Dataset']:
    """The headers (no pixel data) of one DICOM series' instances in a folder.

    Args:
        folder (str): the series folder (its files, not sub-folders, as the reader scans it).
        series_uid (str): SeriesInstanceUID to keep.

    Returns:
        list[pydicom.Dataset]: the instances, ordered by InstanceNumber then file name;
        files that are not DICOM or belong to another series are skipped.

    Raises:
        ValueError: no instance of the series is found, or the instances lack a
            FrameOfReferenceUID (3D coordinates need one) or disagree on it or on the study.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    found = []
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if not osp.isfile(path):
            continue
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:  # no Part 10 preamble: GDCM reads such files too
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
                dataset.get('SeriesInstanceUID')
            except Exception:  # not DICOM at all: pydicom raises many types on garbage
                continue
        except (OSError, ValueError, EOFError):
            continue
        if dataset.get('SeriesInstanceUID') == series_uid and 'SOPInstanceUID' in dataset:
            found.append((int(dataset.get('InstanceNumber') or 0), name, dataset))
    if not found:
        raise ValueError(f'{folder}: no DICOM file of series {series_uid} found to reference')
    datasets = [item[2] for item in sorted(found, key=lambda item: item[:2])]
    frames = {str(ds.get('FrameOfReferenceUID') or '') for ds in datasets}
    if frames == {''}:
        raise ValueError(f'{folder}: series {series_uid} has no FrameOfReferenceUID (0020,0052); '
                         'the SR needs it for 3D patient coordinates')
    if len(frames) > 1:
        raise ValueError(f'{folder}: series {series_uid} mixes FrameOfReferenceUIDs '
                         f"{', '.join(sorted(frames))}")
    studies = {ds.get('StudyInstanceUID') for ds in datasets}
    if len(studies) != 1 or None in studies:
        raise ValueError(f'{folder}: series {series_uid} has StudyInstanceUIDs {sorted(studies)}')
    return datasets


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
    ImagePositionPatient in :attr:`CTVolume.original_geometry`; a box (its 8 corners mapped
    to the stored grid) covers ``k_min <= k <= k_max``.
    """
    if not regions:
        return list(source)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source])
    planes = volume.original_geometry.physical_to_index(positions)[:, 2]
    bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)
    crossed = np.zeros(len(source), dtype=bool)
    for region in regions:
        box = np.asarray(region.box_index, np.float64)
        k = volume.to_original_index(np.where(bits, box[3:], box[:3]))[:, 2]
        crossed |= (planes >= k.min() - 1e-6) & (planes <= k.max() + 1e-6)
    return [ds for ds, keep in zip(source, crossed) if keep]


def _slice_polygons(region: CandidateRegion, geometry: VolumeGeometry) -> List[np.ndarray]:
    """Closed rectangles ``(5, 3)`` (LPS mm), one per slice of the region, in slice order."""
    polygons = []
    for z in range(region.first_slice, region.last_slice + 1):
        box = region.slice_boxes.get(z)
        if box is None:  # not expected: slice_boxes spans first..last
            box = region.box_index[[0, 1, 3, 4]]
        x1, y1, x2, y2 = (float(v) for v in box)
        index = np.array([[x1, y1, z], [x2, y1, z], [x2, y2, z], [x1, y2, z], [x1, y1, z]],
                         np.float64)
        polygons.append(geometry.index_to_physical(index))
    return polygons


def _algorithm_parameters(model: Dict) -> List[str]:
    parameters = []
    for key in ('config', 'checkpoint', 'score_thr'):
        if model.get(key) is not None:
            parameters.append(f'{key}={model[key]}')
    return parameters


def build_dicom_sr(result: VolumeDetectionResult, regions: Sequence[CandidateRegion],
                   algorithm_name: str = 'mp3d_mmdet',
                   algorithm_version: Optional[str] = None,
                   source: Optional[Sequence['pydicom.Dataset']] = None
                   ) -> 'highdicom.sr.Comprehensive3DSR':
    """The SR document of :func:`write_dicom_sr` (content: module docstring), not written.

    Args:
        result (VolumeDetectionResult): a result whose volume was read from a DICOM series.
        regions (Sequence[CandidateRegion]): the candidates to report, in report order.
        algorithm_name (str): TID 4019 algorithm name.
        algorithm_version (str | None): TID 4019 version; None = ``mp3d_mmdet.__version__``.
        source (Sequence[pydicom.Dataset] | None): the source series' headers; None = read
            with :func:`read_source_series`.

    Returns:
        highdicom.sr.Comprehensive3DSR: the document (new random SOP/series instance UIDs).

    Raises:
        ValueError: the input is not a DICOM series, or the series cannot be referenced.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    volume = result.volume
    if volume.source_format != 'dicom':
        raise ValueError(f'dicom-sr needs a DICOM series input, got {volume.source_format} '
                         f'{volume.source_path}')
    if source is None:
        source = read_source_series(volume.source_path, volume.dicom_series_uid)
    source = list(source)
    frame_of_reference = str(source[0].FrameOfReferenceUID)
    version = algorithm_version if algorithm_version is not None else __version__
    code = _codes()
    sop_instance_uid = generate_uid()

    algorithm = hd.sr.AlgorithmIdentification(
        name=algorithm_name, version=str(version),
        parameters=_algorithm_parameters(result.model) or None)
    source_series = hd.sr.SourceSeriesForSegmentation(volume.dicom_series_uid)
    groups = []
    for region in regions:
        tracking = hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=[sop_instance_uid, 'candidate',
                                           str(region.candidate_id)]),
            identifier=f'Lesion candidate {region.candidate_id}')
        measurements = [
            hd.sr.Measurement(name=code['long_axis'], value=float(region.long_axis_mm),
                              unit=code['mm'], algorithm_id=algorithm),
            hd.sr.Measurement(name=code['short_axis'], value=float(region.short_axis_mm),
                              unit=code['mm'], algorithm_id=algorithm),
            hd.sr.Measurement(name=code['certainty'], value=float(region.score),
                              unit=code['probability'], derivation=code['maximum'],
                              algorithm_id=algorithm),
            hd.sr.Measurement(name=code['certainty'], value=float(region.mean_score),
                              unit=code['probability'], derivation=code['mean'],
                              algorithm_id=algorithm)]
        common = dict(tracking_identifier=tracking, finding_type=code['lesion'],
                      finding_category=code['abnormal_structure'], algorithm_id=algorithm,
                      measurements=measurements)
        polygons = _slice_polygons(region, volume.geometry)
        if len(polygons) >= 2:
            surface = hd.sr.VolumeSurface(
                graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=polygons,
                frame_of_reference_uid=frame_of_reference, source_series=source_series)
            groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                referenced_volume_surface=surface, **common))
        else:
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                referenced_region=hd.sr.ImageRegion3D(
                    graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=polygons[0],
                    frame_of_reference_uid=frame_of_reference), **common))
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
        result (VolumeDetectionResult): a result whose volume was read from a DICOM series
            folder (the folder is read again for the source instances' headers).
        path (str): the ``.dcm`` file to write; its folder must exist.
        regions (list[CandidateRegion] | None): the candidates to report, in report order;
            None = :func:`candidate_regions` ``(result)`` (all candidates, best first).
        algorithm_name (str): TID 4019 algorithm name (also the observer device's name).
        algorithm_version (str | None): TID 4019 version; None = ``mp3d_mmdet.__version__``.

    Raises:
        ValueError: the input is not a DICOM series (``'dicom-sr needs a DICOM series input,
            got <format> <path>'``), or its instances cannot be found or lack a Frame of
            Reference.
        ImportError: highdicom is not installed.
    """
    volume = result.volume
    if volume.source_format != 'dicom':
        raise ValueError(f'dicom-sr needs a DICOM series input, got {volume.source_format} '
                         f'{volume.source_path}')
    if regions is None:
        regions = candidate_regions(result)
    document = build_dicom_sr(result, regions, algorithm_name, algorithm_version)
    with atomic_write(path, 'wb') as handle:
        document.save_as(handle, enforce_file_format=True)

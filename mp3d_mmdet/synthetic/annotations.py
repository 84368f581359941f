"""The ground truth of a synthetic set: one ``DL_info.csv`` row per lesion, and the 3D boxes
of every sub-volume in the format of DeepLesion's manual 3D test set.

A lesion is annotated on its central (largest) slice with RECIST endpoints, diameters and a
box = RECIST extent padded by 4 mm (5 px at the release's ~0.8 mm/px, capped at 5 px), all
1-based as in the release; its coarse lesion type follows its region and, as in the release,
is -1 (unknown) in the train split. The 3D ground truth holds every lesion whose core -- the
ellipsoid without its soft edge -- reaches a stored slice, boxed on the slices and pixels it
covers; vessels are not lesions.
"""
import math
from typing import Dict, List, Optional

import numpy as np

from ..datasets.dl_info import SPLIT_NAMES, DLInfoRow, consecutive_runs, subvolume_name
from .anatomy import REGIONS
from .cohort import Cohort, Patient
from .placement import Lesion, Series
from .shapes import Blob

__all__ = ['lesion_row', 'dl_info_rows', 'lesion_box_3d', 'lesions_3d']

_BOX_PADDING_MM = 4.0
_BOX_PADDING_MAX_PX = 5.0


def lesion_row(series: Series, lesion: Lesion, patient: Patient) -> DLInfoRow:
    """The ``DL_info.csv`` row of a lesion (``csv_row`` 0: numbered when written)."""
    s = series.spacing
    blob = lesion.blob
    cx, cy = blob.cx / s, blob.cy / s  # 0-based pixel coordinates of the centre
    a, b = blob.semi_x / s, blob.semi_y / s
    c, t = math.cos(blob.theta), math.sin(blob.theta)
    long_axis = (cx - a * c, cy - a * t, cx + a * c, cy + a * t)
    short_axis = (cx + b * t, cy - b * c, cx - b * t, cy + b * c)
    recist = np.array(long_axis + short_axis) + 1.0  # 1-based as in the release
    pad = min(_BOX_PADDING_MAX_PX, _BOX_PADDING_MM / s)
    xs, ys = recist[0::2], recist[1::2]
    box = (max(1.0, xs.min() - pad), max(1.0, ys.min() - pad),
           min(float(series.size), xs.max() + pad), min(float(series.size), ys.max() + pad))
    body = series.phantom.body_at(blob.cz)
    location = (min(max((blob.cx - (body.cx - body.ax)) / (2 * body.ax), 0.0), 1.0),
                min(max((blob.cy - (body.cy - body.ay)) / (2 * body.ay), 0.0), 1.0),
                (lesion.key_slice - 1) / max(series.num_slices - 1, 1))
    return DLInfoRow(
        csv_row=0,
        file_name=f'{series.folder}_{lesion.key_slice:03d}.png',
        patient_index=series.patient,
        study_index=series.study,
        series_id=series.series,
        key_slice_index=lesion.key_slice,
        measurement_coordinates=tuple(float(v) for v in recist),
        bounding_box=tuple(float(v) for v in box),
        lesion_diameters_pixel=(2.0 * a, 2.0 * b),
        normalized_lesion_location=location,
        coarse_lesion_type=-1 if patient.split == 1 else REGIONS[blob.region].lesion_type,
        possibly_noisy=lesion.noisy,
        slice_range=series.windows[lesion.key_slice],
        spacing_mm_px=(s, s, series.interval),
        image_size=(series.size, series.size),
        dicom_windows=(lesion.dicom_window, ),
        patient_gender=patient.gender,
        patient_age=float(patient.age),
        train_val_test=patient.split)


def dl_info_rows(cohort: Cohort) -> List[DLInfoRow]:
    """The rows of every lesion, sorted by file name, then box."""
    rows = [lesion_row(series, lesion, cohort.patients[series.patient])
            for series, lesion in cohort.lesions()]
    rows.sort(key=lambda row: (row.file_name, row.bounding_box))
    return rows


def lesion_box_3d(series: Series, blob: Blob, first: int, last: int) -> Optional[List[float]]:
    """``[x1, y1, z1, x2, y2, z2]`` of a lesion's core (the ellipsoid without its soft edge)
    within slices ``first..last``: z = slice numbers whose plane cuts the core, x, y = 0-based
    pixels of its widest cross-section (rounded outwards, clipped to the image); None if the
    core reaches none of these slices."""
    cut = [k for k in range(first, last + 1) if abs(series.z_of(k) - blob.cz) < blob.semi_z]
    if not cut:
        return None
    c, t = math.cos(blob.theta), math.sin(blob.theta)
    half_x = math.hypot(blob.semi_x * c, blob.semi_y * t)
    half_y = math.hypot(blob.semi_x * t, blob.semi_y * c)
    s, top = series.spacing, float(series.size - 1)
    centre_half = ((blob.cx, half_x), (blob.cy, half_y))
    x1, y1 = (max(0.0, float(math.floor((c0 - h) / s))) for c0, h in centre_half)
    x2, y2 = (min(top, float(math.ceil((c0 + h) / s))) for c0, h in centre_half)
    return [x1, y1, float(cut[0]), x2, y2, float(cut[-1])]


def lesions_3d(cohort: Cohort) -> Dict[str, Dict[str, np.ndarray]]:
    """``{split name: {sub-volume name: (n, 6) float64 boxes}}`` of every sub-volume (run of
    consecutive stored slices) of every series (:func:`lesion_box_3d` of its lesions)."""
    result: Dict[str, Dict[str, np.ndarray]] = {'train': {}, 'val': {}, 'test': {}}
    for series in cohort.series:
        for first, last in consecutive_runs(series.stored_slices()):
            boxes = [box for box in (lesion_box_3d(series, lesion.blob, first, last)
                                     for lesion in series.lesions) if box is not None]
            split = SPLIT_NAMES[cohort.split_of(series)]
            result[split][subvolume_name(series.folder, first, last)] = np.array(
                boxes, dtype=np.float64).reshape(-1, 6)
    return result

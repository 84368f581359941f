"""DeepLesion-release files for the sub-volume tests: DL_info.csv rows and slice PNGs whose
values encode their slice number (so a test can tell which slice it reads)."""
import os
import os.path as osp

import cv2
import numpy as np

from mp3d_mmdet.datasets.dl_info import DLInfoRow

HEIGHT, WIDTH = 6, 7  # not square: a swapped x/y would change the shape


def expected_hu(slice_number, rows=HEIGHT, cols=WIDTH):
    """The HU written into slice ``slice_number``: unique per (slice, row, column)."""
    y, x = np.mgrid[0:rows, 0:cols]
    return (-1000 + 100 * slice_number + 10 * y + x).astype(np.int16)


def make_row(series, key, spacing, split, csv_row=0):
    patient, study, number = (int(v) for v in series.split('_'))
    return DLInfoRow(
        csv_row=csv_row, file_name=f'{series}_{key:03d}.png', patient_index=patient,
        study_index=study, series_id=number, key_slice_index=key,
        measurement_coordinates=(2.0, 2.0, 5.0, 2.0, 3.0, 1.0, 3.0, 4.0),
        bounding_box=(2.0, 1.0, 5.0, 4.0), lesion_diameters_pixel=(3.0, 3.0),
        normalized_lesion_location=(0.5, 0.5, 0.5), coarse_lesion_type=-1,
        possibly_noisy=False, slice_range=(key, key), spacing_mm_px=spacing,
        image_size=(WIDTH, HEIGHT), dicom_windows=((-175.0, 275.0), ), patient_gender='F',
        patient_age=60.0, train_val_test=split)


def write_slices(root, series, numbers, rows=HEIGHT, cols=WIDTH):
    folder = osp.join(root, 'Images_png', series)
    os.makedirs(folder, exist_ok=True)
    for n in numbers:
        values = (expected_hu(n, rows, cols).astype(np.int32) + 32768).astype(np.uint16)
        assert cv2.imwrite(osp.join(folder, f'{n:03d}.png'), values)

"""The ground truth: DL_info rows (RECIST, diameters, boxes) and the 3D boxes of every
sub-volume."""
import os
import os.path as osp

import numpy as np

from mp3d_mmdet.datasets.dl_info import consecutive_runs, subvolume_name
from mp3d_mmdet.datasets.lesions_3d import read_lens_annotations
from mp3d_mmdet.structures import box_iou


def test_recist_box_and_diameters_are_consistent(generated):
    _, _, rows = generated
    for row in rows:
        m = np.array(row.measurement_coordinates).reshape(4, 2)
        long_axis = np.linalg.norm(m[1] - m[0])
        short_axis = np.linalg.norm(m[3] - m[2])
        np.testing.assert_allclose(row.lesion_diameters_pixel, (long_axis, short_axis),
                                   rtol=1e-4)
        assert long_axis >= short_axis
        x1, y1, x2, y2 = row.bounding_box
        assert x1 <= m[:, 0].min() and m[:, 0].max() <= x2
        assert y1 <= m[:, 1].min() and m[:, 1].max() <= y2
        assert 1.0 <= x1 and x2 <= row.image_size[0] and 1.0 <= y1 and y2 <= row.image_size[1]
        spacing = row.spacing_mm_px[0]
        assert 5.0 - 1e-3 <= long_axis * spacing <= 40.0 + 1e-3


def test_3d_ground_truth_of_every_sub_volume(generated):
    """lesions_3d.pkl: one entry per run of stored slices, each lesion's 3D box around its
    key-slice box and through its key slice, vessels left out."""
    root, summary, rows = generated
    truth = {split: read_lens_annotations(summary['lesions_3d_path'], split).boxes
             for split in ('train', 'val', 'test')}
    expected_names = {}
    for series in sorted({r.series_folder for r in rows}):
        stored = [int(f[:-4]) for f in os.listdir(osp.join(root, 'Images_png', series))]
        split = {1: 'train', 2: 'val', 3: 'test'}[
            next(r.train_val_test for r in rows if r.series_folder == series)]
        for first, last in consecutive_runs(stored):
            expected_names[subvolume_name(series, first, last)] = split
    assert {name: split for split, boxes in truth.items() for name in boxes} == expected_names
    assert summary['num_subvolumes'] == len(expected_names)
    for row in rows:  # every annotated lesion has a 3D box through its key slice
        split = {1: 'train', 2: 'val', 3: 'test'}[row.train_val_test]
        name = next(n for n in truth[split] if n.startswith(row.series_folder + '_')
                    and int(n[-7:-4]) <= row.key_slice_index <= int(n[-3:]))
        boxes = truth[split][name]
        through = boxes[(boxes[:, 2] <= row.key_slice_index)
                        & (row.key_slice_index <= boxes[:, 5])]
        x1, y1, x2, y2 = np.array(row.bounding_box) - 1.0  # 0-based key-slice box
        centres = (through[:, [0, 1]] + through[:, [3, 4]]) / 2
        assert ((x1 <= centres[:, 0]) & (centres[:, 0] <= x2)
                & (y1 <= centres[:, 1]) & (centres[:, 1] <= y2)).any()
        assert box_iou(through[:, [0, 1, 3, 4]], np.array([[x1, y1, x2, y2]]),
                       legacy_plus_one=True).max() > 0.25
    # lesions only: at most one box per lesion of the series in each sub-volume
    lesions_per_series = {}
    for row in rows:
        lesions_per_series[row.series_folder] = lesions_per_series.get(row.series_folder, 0) + 1
    for split, boxes in truth.items():
        for name, b in boxes.items():
            assert len(b) <= lesions_per_series[name[:12]]

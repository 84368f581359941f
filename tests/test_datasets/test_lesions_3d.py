"""3D ground truth of DeepLesion sub-volumes: the LENS file format and the key-slice boxes of
DL_info.csv; the sub-volume naming of the release."""
import dataclasses
import os.path as osp
import pickle

import numpy as np
import pytest

from mp3d_mmdet.datasets.dl_info import (DLInfoRow, consecutive_runs, parse_subvolume_name,
                                         subvolume_name, write_dl_info)
from mp3d_mmdet.datasets.lesions_3d import (key_slice_ground_truth, read_lens_annotations,
                                            write_lens_annotations)
from mp3d_mmdet.utils.pickle_allowlist import UnsafePickleError


def row(file_name, box, split=3, noisy=False, long_px=10.0, spacing=0.8):
    patient, study, series, key = (int(v) for v in file_name[:-4].split('_'))
    return DLInfoRow(
        csv_row=0, file_name=file_name, patient_index=patient, study_index=study,
        series_id=series, key_slice_index=key, measurement_coordinates=(0.0, ) * 8,
        bounding_box=tuple(float(v) for v in box), lesion_diameters_pixel=(long_px, 5.0),
        normalized_lesion_location=(0.5, 0.5, 0.5), coarse_lesion_type=4,
        possibly_noisy=noisy, slice_range=(key - 2, key + 2),
        spacing_mm_px=(spacing, spacing, 2.5), image_size=(64, 64),
        dicom_windows=((-175.0, 275.0), ), patient_gender='M', patient_age=50.0,
        train_val_test=split)


def test_sub_volume_names_and_runs():
    assert consecutive_runs([9, 1, 2, 3, 3, 7, 8]) == [(1, 3), (7, 9)]
    assert consecutive_runs([]) == []
    assert subvolume_name('000001_01_01', 5, 120) == '000001_01_01_005-120'
    assert parse_subvolume_name('000001_01_01_005-120') == ('000001_01_01', 5, 120)
    for bad in ('000001_01_01_5-12', '000001_01_01_012-005', 'scan_001-002'):
        with pytest.raises(ValueError, match='is not a DeepLesion sub-volume name'):
            parse_subvolume_name(bad)


def test_lens_file_round_trip_and_checks(tmp_path):
    path = str(tmp_path / 'lesions_3d.pkl')
    boxes = {'000001_01_01_001-020': np.array([[1, 2, 3, 10, 12, 8]]),
             '000002_01_01_010-015': np.zeros((0, 6))}
    write_lens_annotations(path, {'val': {}, 'test': boxes})
    truth = read_lens_annotations(path, 'test')
    assert not truth.key_slice and truth.long_diameters_mm is None
    assert list(truth.boxes) == sorted(boxes)
    np.testing.assert_array_equal(truth.boxes['000001_01_01_001-020'], [[1, 2, 3, 10, 12, 8]])
    assert truth.boxes['000002_01_01_010-015'].shape == (0, 6)
    assert "('test': 2 sub-volumes" in truth.source
    with pytest.raises(ValueError, match=r"no split 'train' \(the file holds \['test', 'val'\]"):
        read_lens_annotations(path, 'train')
    with pytest.raises(FileNotFoundError, match='3D annotation file not found'):
        read_lens_annotations(str(tmp_path / 'missing.pkl'), 'test')

    def write(content):
        with open(str(tmp_path / 'bad.pkl'), 'wb') as handle:
            pickle.dump(content, handle)
        return str(tmp_path / 'bad.pkl')
    with pytest.raises(ValueError, match=r"split 'test', sub-volume '000001_01_01_001-020' has "
                       r'an inverted box'):
        read_lens_annotations(write({'test': {'000001_01_01_001-020': [[5, 0, 0, 1, 1, 1]]}}),
                              'test')
    with pytest.raises(ValueError, match=r"sub-volume '000001_01_01_005-009': box 0 spans "
                       r"slices 4-6, outside the sub-volume's slices 5-9"):
        read_lens_annotations(write({'test': {'000001_01_01_005-009': [[0, 0, 4, 1, 1, 6]]}}),
                              'test')
    with pytest.raises(ValueError, match="'scan' is not a DeepLesion sub-volume name"):
        read_lens_annotations(write({'test': {'scan': np.zeros((0, 6))}}), 'test')
    with pytest.raises(ValueError, match=r'expected \{split: \{sub-volume name'):
        read_lens_annotations(write([1, 2]), 'test')
    with pytest.raises(UnsafePickleError):
        read_lens_annotations(write({'test': {'000001_01_01_001-020': osp.join}}), 'test')


def test_key_slice_boxes_land_in_the_sub_volume_holding_the_key_slice(tmp_path):
    path = str(tmp_path / 'DL_info.csv')
    write_dl_info(path, [
        row('000001_01_01_010.png', [11, 21, 31, 41], long_px=20.0, spacing=0.5),
        row('000001_01_01_010.png', [41, 41, 51, 51], noisy=True),
        row('000001_01_01_050.png', [1, 1, 9, 9]),
        row('000002_01_01_020.png', [5, 5, 15, 15], split=1),  # another split
    ])
    names = ['000001_01_01_005-015', '000001_01_01_045-055', '000001_01_01_070-080',
             '000002_01_01_018-022']
    truth = key_slice_ground_truth(path, 'test', names)
    assert truth.key_slice
    assert list(truth.boxes) == names[:3]  # the train series is left out
    # 0-based from the 1-based csv box, z = the key slice number
    np.testing.assert_array_equal(truth.boxes[names[0]], [[10, 20, 10, 30, 40, 10]])
    np.testing.assert_array_equal(truth.long_diameters_mm[names[0]], [10.0])
    np.testing.assert_array_equal(truth.boxes[names[1]], [[0, 0, 50, 8, 8, 50]])
    assert truth.boxes[names[2]].shape == (0, 6)  # no key slice: counts for false positives
    with_noisy = key_slice_ground_truth(path, 'test', names, exclude_noisy=False)
    assert len(with_noisy.boxes[names[0]]) == 2
    with pytest.raises(ValueError, match=r"1 lesion\(s\) of the 'test' split lie on key slices "
                       r'outside the evaluated sub-volumes \(first: row 4, '
                       r'000001_01_01_050.png\)'):
        key_slice_ground_truth(path, 'test', names[:1])
    with pytest.raises(ValueError, match="split must be one of"):
        key_slice_ground_truth(path, 'testing', names)


def test_key_slice_rows_are_dataclass_rows():
    assert dataclasses.is_dataclass(row('000001_01_01_010.png', [1, 1, 2, 2]))


def test_z_offset_a_volume_name_implies():
    from mp3d_mmdet.datasets.dl_info import subvolume_z_offset
    assert subvolume_z_offset('000001_01_01_103-115') == 103
    assert subvolume_z_offset('000001_01_01_005-120') == 5
    for other in ('scan', '000001_01_01_5-12', 'case_103-115'):
        assert subvolume_z_offset(other) == 0


def _record(boxes, z_offset, shape=(64, 64, 13)):
    return dict(boxes=np.array(boxes, dtype=np.float64).reshape(-1, 7), z_offset=z_offset,
                shape_xyz=list(shape), spacing_mm_xyz=[0.8, 0.8, 2.5])


def test_candidates_come_into_series_slices_by_the_name(tmp_path):
    from mp3d_mmdet.datasets.lesions_3d import VolumeGroundTruth, candidates_in_series_slices
    name = '000001_01_01_103-115'
    truth = VolumeGroundTruth(boxes={name: np.array([[10., 10., 105., 20., 20., 107.]])},
                              key_slice=False, long_diameters_mm=None, source='s',
                              path='gt.pkl')
    boxes, gts = candidates_in_series_slices(
        truth, {name: _record([[10, 10, 2, 20, 20, 4, 0.9]], 103)}, 'results.jsonl')
    np.testing.assert_array_equal(boxes[0], [[10, 10, 105, 20, 20, 107, 0.9]])
    assert gts[0] is truth.boxes[name]
    # a NIfTI of the sub-volume, detected by a reader that did not know its slice numbers
    with pytest.warns(UserWarning, match=r"results.jsonl: 1 volume\(s\) have another z_offset "
                      r'than the first slice their sub-volume name states, e.g. '
                      r'000001_01_01_103-115 \(0\); evaluated with the name'):
        boxes, _ = candidates_in_series_slices(
            truth, {name: _record([[10, 10, 2, 20, 20, 4, 0.9]], 0)}, 'results.jsonl')
    np.testing.assert_array_equal(boxes[0][:, [2, 5]], [[105, 107]])


@pytest.mark.parametrize('lesion', [[370., 380., 105., 400., 390., 107.],
                                    [10., 64., 105., 20., 70., 107.],
                                    [-9., 10., 105., -1., 20., 107.]])
def test_a_lesion_outside_its_volume_image_is_refused(lesion):
    from mp3d_mmdet.datasets.lesions_3d import VolumeGroundTruth, candidates_in_series_slices
    name = '000001_01_01_103-115'
    truth = VolumeGroundTruth(boxes={name: np.array([[1., 1., 104., 9., 9., 104.], lesion])},
                              key_slice=False, long_diameters_mm=None, source='s',
                              path='gt.pkl')
    with pytest.raises(ValueError, match=r"gt.pkl: sub-volume '000001_01_01_103-115', box 1 "
                       r".* lies outside the volume's 64x64 image \(results.jsonl\): such a "
                       'lesion can never be hit'):
        candidates_in_series_slices(truth, {name: _record([], 103)}, 'results.jsonl')
    inside = dataclasses.replace(truth, boxes={name: np.array([[60., 60., 104., 70., 70., 104.]])})
    assert len(candidates_in_series_slices(inside, {name: _record([], 103)}, 'r')[1]) == 1


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_of_every_protocol_are_recognised_and_read(tmp_path, protocol):
    from mp3d_mmdet.datasets.lesions_3d import is_pickle_file
    path = str(tmp_path / 'lesions.pkl')
    boxes = np.array([[1., 2., 3., 10., 12., 8.]])
    with open(path, 'wb') as handle:
        pickle.dump({'test': {'000001_01_01_001-020': boxes}}, handle, protocol=protocol)
    assert is_pickle_file(path)
    np.testing.assert_array_equal(
        read_lens_annotations(path, 'test').boxes['000001_01_01_001-020'], boxes)


def test_text_files_are_not_pickles(tmp_path):
    from mp3d_mmdet.datasets.lesions_3d import is_pickle_file
    write_dl_info(str(tmp_path / 'DL_info.csv'), [row('000001_01_01_005.png', (1, 1, 9, 9))])
    (tmp_path / 'empty').write_bytes(b'')
    (tmp_path / 'truncated.pkl').write_bytes(pickle.dumps({'a': 1}, protocol=0)[:-1])
    for name in ('DL_info.csv', 'empty', 'truncated.pkl'):
        assert not is_pickle_file(str(tmp_path / name))

"""DeepLesionDataset on generated data (split sizes, noisy rows, fractions) and on hand-made
csv files (coordinates, diameters, grouping, errors)."""
import dataclasses
import os
import os.path as osp
from collections import Counter

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS

from mp3d_mmdet.datasets import DeepLesionDataset
from mp3d_mmdet.datasets.dl_info import DLInfoRow, read_dl_info, write_dl_info
from mp3d_mmdet.datasets.transforms import LoadCTSlices
from mp3d_mmdet.synthetic import make_synthetic_deeplesion

DATA_INFO_KEYS = {
    'img_path', 'img_id', 'width', 'height', 'series_dir', 'key_slice', 'slice_interval',
    'pixel_spacing', 'slice_range', 'dicom_windows', 'patient_index', 'study_index',
    'series_id', 'instances', 'sample_idx'
}
INSTANCE_KEYS = {
    'bbox', 'bbox_label', 'ignore_flag', 'lesion_type', 'long_diameter_mm',
    'short_diameter_mm', 'possibly_noisy', 'csv_row'
}


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_deeplesion'))
    summary = make_synthetic_deeplesion(root, num_patients=8, seed=3, image_size=64,
                                        noisy_fraction=0.3, progress=False)
    return root, summary, read_dl_info(osp.join(root, 'DL_info.csv'))


def build(root, **kwargs):
    return DeepLesionDataset(data_root=root, ann_file='DL_info.csv',
                             data_prefix=dict(img='Images_png/'), pipeline=[], **kwargs)


@pytest.mark.parametrize('split,code', [('train', 1), ('val', 2), ('test', 3)])
def test_split_sizes_and_lesion_counts_match_the_csv(generated, split, code):
    root, summary, rows = generated
    split_rows = [r for r in rows if r.train_val_test == code]
    all_in = build(root, split=split, exclude_noisy=False)
    assert len(all_in) == len({r.file_name for r in split_rows}) == (
        summary['splits'][split]['key_slices'])
    stats = all_in.get_split_statistics()
    assert stats['lesions'] == len(split_rows) == summary['splits'][split]['lesions']
    assert stats['noisy_lesions'] == sum(r.possibly_noisy for r in split_rows)
    clean = [r for r in split_rows if not r.possibly_noisy]
    without_noisy = build(root, split=code)  # split by code, noisy excluded by default
    assert len(without_noisy) == len({r.file_name for r in clean})
    assert without_noisy.get_split_statistics()['lesions'] == len(clean)
    assert without_noisy.get_split_statistics()['noisy_lesions'] == 0


def test_noisy_rows_are_excluded_with_their_empty_key_slices(generated):
    root, summary, rows = generated
    assert summary['num_noisy_rows'] >= 2
    for split in ('train', 'val', 'test'):
        with_noisy = build(root, split=split, exclude_noisy=False)
        without = build(root, split=split)
        noisy_lesions = with_noisy.get_split_statistics()['noisy_lesions']
        all_noisy = sum(all(i['possibly_noisy'] for i in info['instances'])
                        for info in (with_noisy.get_data_info(k) for k in range(len(with_noisy))))
        assert len(with_noisy) - len(without) == all_noisy
        assert (with_noisy.get_split_statistics()['lesions']
                - without.get_split_statistics()['lesions']) == noisy_lesions


def test_data_info_fields_of_a_generated_item(generated):
    root, _, rows = generated
    dataset = build(root, split='train', exclude_noisy=False)
    info = dataset.get_data_info(0)
    assert set(info) == DATA_INFO_KEYS
    first = [r for r in rows if r.train_val_test == 1][0]
    assert info['img_path'] == osp.join(root, 'Images_png', first.series_folder,
                                        f'{first.key_slice_index:03d}.png')
    assert osp.isfile(info['img_path'])
    assert info['series_dir'] == osp.join(root, 'Images_png', first.series_folder)
    assert info['img_id'] == first.csv_row - 2
    assert info['key_slice'] == first.key_slice_index
    assert info['slice_interval'] == first.spacing_mm_px[2]
    assert info['slice_range'] == first.slice_range
    for instance in info['instances']:
        assert set(instance) == INSTANCE_KEYS
        assert instance['bbox_label'] == 0 and instance['ignore_flag'] == 0
        assert instance['lesion_type'] == -1  # the release has no types in train, nor do we
    assert dataset.metainfo['classes'] == ('lesion', )


def test_the_large_series_is_one_and_a_half_times_the_image_size(generated):
    root, summary, rows = generated
    assert summary['large_image_size'] == 96
    (split, ) = {r.train_val_test for r in rows if r.series_folder == summary['large_series']}
    dataset = build(root, split=split, exclude_noisy=False)
    sizes = {(i['width'], i['height'])
             for i in (dataset.get_data_info(k) for k in range(len(dataset)))
             if summary['large_series'] in i['series_dir']}
    assert sizes == {(96, 96)}
    key = [r for r in rows if r.series_folder == summary['large_series']][0].key_slice_index
    image = cv2.imread(osp.join(root, 'Images_png', summary['large_series'], f'{key:03d}.png'),
                       cv2.IMREAD_UNCHANGED)
    assert image.shape == (96, 96) and image.dtype == np.uint16


def test_multi_lesion_key_slice_is_one_item(generated):
    root, summary, rows = generated
    (name, ) = summary['multi_lesion_key_slices'][:1]
    group = [r for r in rows if r.file_name == name]
    assert len(group) >= 2
    dataset = build(root, split=group[0].train_val_test, exclude_noisy=False)
    (info, ) = [i for i in (dataset.get_data_info(k) for k in range(len(dataset)))
                if i['img_path'].endswith(osp.join(group[0].series_folder,
                                                   f'{group[0].key_slice_index:03d}.png'))]
    assert [inst['csv_row'] for inst in info['instances']] == [r.csv_row for r in group]
    np.testing.assert_allclose([inst['bbox'] for inst in info['instances']],
                               [np.array(r.bounding_box) - 1 for r in group])


def test_data_fraction_keeps_whole_patients_nested_and_seeded(generated):
    root, _, rows = generated
    train_patients = sorted({r.patient_index for r in rows if r.train_val_test == 1})
    assert len(train_patients) == 6

    def patients(dataset):
        return {dataset.get_data_info(k)['patient_index'] for k in range(len(dataset))}

    def key_slices_of(selected):
        return len({r.file_name for r in rows
                    if r.train_val_test == 1 and r.patient_index in selected})

    half = build(root, split='train', exclude_noisy=False, data_fraction=0.5, fraction_seed=1)
    third = build(root, split='train', exclude_noisy=False, data_fraction=0.34, fraction_seed=1)
    assert len(patients(half)) == 3 and len(patients(third)) == 2
    assert patients(third) < patients(half)
    assert len(half) == key_slices_of(patients(half))  # every key slice of a kept patient
    again = build(root, split='train', exclude_noisy=False, data_fraction=0.5, fraction_seed=1)
    assert patients(again) == patients(half)
    seeds = {frozenset(patients(build(root, split='train', exclude_noisy=False,
                                      data_fraction=0.5, fraction_seed=s))) for s in range(6)}
    assert len(seeds) > 1
    with pytest.raises(ValueError, match=r'data_fraction must be in \(0, 1\]'):
        build(root, data_fraction=0.0)


def test_built_from_the_registry_with_lazy_init(generated):
    root, _, _ = generated
    dataset = DATASETS.build(dict(type='DeepLesionDataset', data_root=root, split='val',
                                  lazy_init=True, pipeline=[]))
    assert len(dataset) == len(build(root, split='val'))


# ----------------------------------------------------------------- hand-made csv files
def make_row(csv_file_name='000001_01_01_005.png', **overrides):
    patient, study, series, key = (int(v) for v in csv_file_name[:-4].split('_'))
    values = dict(
        csv_row=0, file_name=csv_file_name, patient_index=patient, study_index=study,
        series_id=series, key_slice_index=key,
        measurement_coordinates=(11.0, 21.0, 31.0, 41.0, 11.0, 41.0, 31.0, 21.0),
        bounding_box=(11.0, 21.0, 31.0, 41.0), lesion_diameters_pixel=(10.0, 5.0),
        normalized_lesion_location=(0.5, 0.5, 0.5), coarse_lesion_type=4, possibly_noisy=False,
        slice_range=(key - 2, key + 2), spacing_mm_px=(0.8, 0.8, 2.5), image_size=(64, 64),
        dicom_windows=((-175.0, 275.0), ), patient_gender='M', patient_age=50.0,
        train_val_test=1)
    values.update(overrides)
    return DLInfoRow(**values)


def write_dataset(root, rows, missing_files=()):
    os.makedirs(root, exist_ok=True)
    write_dl_info(osp.join(root, 'DL_info.csv'), rows)
    for row in rows:
        folder = osp.join(root, 'Images_png', row.series_folder)
        os.makedirs(folder, exist_ok=True)
        width, height = row.image_size
        for index in range(row.slice_range[0], row.slice_range[1] + 1):
            path = osp.join(folder, f'{index:03d}.png')
            if path not in missing_files and not osp.exists(path):
                cv2.imwrite(path, np.full((height, width), 32768, np.uint16))
    return str(root)


def test_one_based_boxes_become_zero_based_and_diameters_mm(tmp_path):
    root = write_dataset(tmp_path, [make_row()])
    (info, ) = [build(root).get_data_info(0)]
    assert info['instances'][0]['bbox'] == [10.0, 20.0, 30.0, 40.0]
    assert info['instances'][0]['long_diameter_mm'] == pytest.approx(8.0)
    assert info['instances'][0]['short_diameter_mm'] == pytest.approx(4.0)
    assert info['instances'][0]['lesion_type'] == 4
    assert (info['width'], info['height'], info['pixel_spacing']) == (64, 64, 0.8)
    assert info['dicom_windows'] == [(-175.0, 275.0)]


def test_rows_of_one_key_slice_are_grouped_in_csv_order(tmp_path):
    rows = [make_row(), make_row('000001_01_01_009.png'),
            make_row(bounding_box=(1.0, 1.0, 5.0, 5.0), dicom_windows=((-1500.0, 500.0), ))]
    root = write_dataset(tmp_path, rows)
    dataset = build(root)
    assert len(dataset) == 2
    first = dataset.get_data_info(0)
    assert [inst['bbox'] for inst in first['instances']] == [
        [10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 4.0, 4.0]]
    assert [inst['csv_row'] for inst in first['instances']] == [2, 4]
    assert first['img_id'] == 0 and dataset.get_data_info(1)['img_id'] == 1
    assert first['dicom_windows'] == [(-175.0, 275.0), (-1500.0, 500.0)]


def test_box_outside_the_image_is_clipped_with_a_warning_naming_the_row(tmp_path):
    rows = [make_row(), make_row(bounding_box=(-3.0, 50.0, 20.0, 70.0))]
    root = write_dataset(tmp_path, rows)
    with pytest.warns(UserWarning, match=r"DL_info.csv: row 3, column 'Bounding_boxes': box .* "
                      r'extends outside the 64x64 image; clipped to 0-based '
                      r'\[0.0, 49.0, 19.0, 63.0\]'):
        dataset = build(root)
    assert dataset.get_data_info(0)['instances'][1]['bbox'] == [0.0, 49.0, 19.0, 63.0]


def test_box_entirely_outside_the_image_is_an_error(tmp_path):
    root = write_dataset(tmp_path, [make_row(bounding_box=(70.0, 10.0, 80.0, 20.0))])
    with pytest.raises(ValueError, match="row 2, column 'Bounding_boxes'.* lies outside"):
        build(root)


def test_missing_key_slice_file_names_the_row(tmp_path):
    rows = [make_row(), make_row('000002_01_01_007.png')]
    missing = osp.join(str(tmp_path), 'Images_png', '000002_01_01', '007.png')
    root = write_dataset(tmp_path, rows, missing_files=(missing, ))
    with pytest.raises(FileNotFoundError,
                       match=r'csv row\(s\) 3: key slice file .*000002_01_01/007.png'):
        build(root)


def test_empty_split_and_bad_split_names(tmp_path):
    root = write_dataset(tmp_path, [make_row()])
    with pytest.raises(ValueError, match=r"split 'test' \(Train_Val_Test = 3\) has no rows"):
        build(root, split='test')
    with pytest.raises(ValueError, match="split must be 'train', 'val', 'test' or 1, 2, 3"):
        build(root, split='training')
    noisy_root = write_dataset(tmp_path / 'noisy', [make_row(possibly_noisy=True)])
    with pytest.raises(ValueError, match='no key slice left after excluding Possibly_noisy'):
        build(noisy_root)
    assert len(build(noisy_root, exclude_noisy=False)) == 1


def test_a_noisy_lesion_leaves_the_other_lesions_of_its_key_slice(tmp_path):
    rows = [make_row(), make_row(bounding_box=(1.0, 1.0, 5.0, 5.0), possibly_noisy=True),
            make_row('000001_01_01_009.png', possibly_noisy=True)]
    root = write_dataset(tmp_path, rows)
    dataset = build(root)
    assert len(dataset) == 1
    assert [inst['csv_row'] for inst in dataset.get_data_info(0)['instances']] == [2]
    everything = build(root, exclude_noisy=False)
    assert [[inst['possibly_noisy'] for inst in everything.get_data_info(k)['instances']]
            for k in range(2)] == [[False, True], [True]]


def test_inconsistent_rows_of_one_key_slice(tmp_path):
    rows = [make_row(), make_row(spacing_mm_px=(0.8, 0.8, 5.0), bounding_box=(1.0, 1.0, 5.0, 5.0))]
    root = write_dataset(tmp_path, rows)
    with pytest.raises(ValueError, match='rows 2 and 3 annotate the same key slice '
                       '000001_01_01_005.png but disagree on spacing_mm_px'):
        build(root)


def test_image_size_must_match_the_png_files(tmp_path):
    rows = [make_row(), make_row(bounding_box=(1.0, 1.0, 5.0, 5.0))]
    root = write_dataset(tmp_path, rows)
    write_dl_info(osp.join(root, 'DL_info.csv'),
                  [dataclasses.replace(row, image_size=(96, 96)) for row in rows])
    with pytest.raises(ValueError, match=r"DL_info.csv: csv row\(s\) 2, 3: annotated size "
                       r'96x96 but the key slice .*005.png is 64x64 px'):
        build(root)
    # without the file check at load time, the loader refuses the item instead
    dataset = DeepLesionDataset(data_root=root, check_files=False,
                                pipeline=[LoadCTSlices(num_slices=3)])
    with pytest.raises(ValueError,
                       match=r'csv row\(s\) 2, 3: annotated size 96x96 but the key slice'):
        dataset[0]


def test_filter_cfg_applies_to_training_only(tmp_path):
    rows = [make_row(), make_row('000002_01_01_005.png', image_size=(32, 32),
                                 bounding_box=(1.0, 1.0, 9.0, 9.0))]
    root = write_dataset(tmp_path, rows)
    cfg = dict(filter_empty_gt=True, min_size=48)
    assert len(build(root, filter_cfg=cfg)) == 1
    assert len(build(root, filter_cfg=cfg, test_mode=True)) == 2
    counts = Counter(build(root).get_data_info(k)['width'] for k in range(2))
    assert counts == {64: 1, 32: 1}


def test_dataset_items_through_the_paper_pipelines(generated):
    from mmengine.registry import init_default_scope

    from helpers.paper_config import paper_pipelines
    init_default_scope('mmdet')
    root, _, _ = generated
    np.random.seed(0)
    train = DeepLesionDataset(data_root=root, split='train',
                              pipeline=paper_pipelines(num_slices=5)[0])
    for index in range(len(train)):
        item = train[index]
        channels, height, width = item['inputs'].shape
        assert channels == 5 and max(height, width) in (448, 512, 576)
        info = train.get_data_info(index)
        assert len(item['data_samples'].gt_instances) == len(info['instances'])
    test = DeepLesionDataset(data_root=root, split='test', test_mode=True,
                             pipeline=paper_pipelines()[1])
    item = test[0]
    assert item['inputs'].shape == (9, 512, 512)
    assert item['data_samples'].img_id == test.get_data_info(0)['img_id']
    assert item['data_samples'].ori_shape == (test.get_data_info(0)['height'],
                                              test.get_data_info(0)['width'])


def test_a_clipped_box_keeps_the_file_box_for_the_mp3d_evaluation(tmp_path):
    rows = [make_row(), make_row(bounding_box=(59.0, 21.0, 79.68, 31.0))]
    root = write_dataset(tmp_path, rows)
    with pytest.warns(UserWarning, match='extends outside the 64x64 image'):
        instances = build(root).get_data_info(0)['instances']
    assert instances[1]['bbox'] == [58.0, 20.0, 63.0, 30.0]
    np.testing.assert_allclose(instances[1]['file_bbox'], [58.0, 20.0, 78.68, 30.0])
    assert 'file_bbox' not in instances[0]  # inside the image: one box

"""The official MP3D / MVP-Net JSON annotation files: a hand-written file in the official
schema, the same split written from a generated DL_info.csv read both ways, and the errors."""
import json
import math
import os.path as osp

import numpy as np
import pytest

from mp3d_mmdet.datasets import DeepLesionDataset
from mp3d_mmdet.datasets.deeplesion_json import (annotation_file_format, read_deeplesion_json,
                                                 write_deeplesion_json)
from mp3d_mmdet.datasets.dl_info import read_dl_info
from mp3d_mmdet.datasets.transforms import LoadCTSlices
from mp3d_mmdet.synthetic import make_synthetic_deeplesion

# the example records of the official test file (shared interop facts), plus a second lesion
# on the same image flagged noisy and a second image of another patient
OFFICIAL_RECORDS = {
    'images': [
        {'file_name': '000001_01_01/109.png', 'height': 512, 'width': 512, 'id': 4794,
         'slice_no': 109, 'spacing': 0.488281, 'slice_intv': 5.0, 'z_position': 0.434454,
         'windows': [-175.0, 275.0]},
        {'file_name': '000002_02_03/007.png', 'height': 512, 'width': 512, 'id': 4795,
         'slice_no': 7, 'spacing': 0.7, 'slice_intv': 1.25, 'z_position': 0.5,
         'windows': [-1350.0, 150.0]},
    ],
    'annotations': [
        {'image_id': 4794, 'bbox': [225.169, 89.0204, 15.083, 21.9566], 'area': 331.17,
         'iscrowd': 0, 'category_id': 1, 'id': 4890, 'noisy': 0, 'segmentation': [[]]},
        {'image_id': 4794, 'bbox': [10.0, 20.0, 5.0, 6.0], 'area': 30.0, 'iscrowd': 0,
         'category_id': 1, 'id': 4891, 'noisy': 1, 'segmentation': [[]]},
        {'image_id': 4795, 'bbox': [100.5, 200.25, 30.0, 40.0], 'area': 1200.0, 'iscrowd': 0,
         'category_id': 1, 'id': 4892, 'noisy': 0, 'segmentation': [[]]},
    ],
    'categories': [{'id': 1, 'name': 'Lesion'}],
}


def write_json(path, content):
    with open(path, 'w') as handle:
        json.dump(content, handle)
    return str(path)


def build(root, ann_file, **kwargs):
    return DeepLesionDataset(data_root=str(root), ann_file=ann_file, pipeline=[], **kwargs)


@pytest.fixture()
def official_root(tmp_path):
    (tmp_path / 'annotations').mkdir()
    write_json(tmp_path / 'annotations' / 'deeplesion_test.json', OFFICIAL_RECORDS)
    return tmp_path


def test_hand_written_official_file(official_root):
    dataset = build(official_root, 'annotations/deeplesion_test.json', check_files=False,
                    exclude_noisy=False)
    assert dataset.annotation_format == 'json' and dataset.split == 'test'
    assert len(dataset) == 2
    first = dataset.get_data_info(0)
    assert first['img_id'] == 4794
    assert first['img_path'] == osp.join(str(official_root), 'Images_png', '000001_01_01',
                                         '109.png')
    assert first['series_dir'] == osp.join(str(official_root), 'Images_png', '000001_01_01')
    assert (first['key_slice'], first['width'], first['height']) == (109, 512, 512)
    assert first['slice_interval'] == 5.0 and first['pixel_spacing'] == 0.488281
    assert first['dicom_windows'] == [(-175.0, 275.0)] and first['slice_range'] is None
    assert (first['patient_index'], first['study_index'], first['series_id']) == (1, 1, 1)
    # [x, y, w, h] -> [x, y, x + w, y + h]
    np.testing.assert_allclose(first['instances'][0]['bbox'],
                               [225.169, 89.0204, 225.169 + 15.083, 89.0204 + 21.9566])
    assert [inst['ann_id'] for inst in first['instances']] == [4890, 4891]
    assert [inst['possibly_noisy'] for inst in first['instances']] == [False, True]
    assert first['instances'][0]['lesion_type'] == -1
    assert math.isnan(first['instances'][0]['long_diameter_mm'])
    second = dataset.get_data_info(1)
    assert (second['patient_index'], second['study_index'], second['series_id']) == (2, 2, 3)
    assert second['img_path'].endswith(osp.join('000002_02_03', '007.png'))
    assert second['instances'][0]['bbox'] == [100.5, 200.25, 130.5, 240.25]


def test_noisy_annotations_are_excluded_by_default(official_root):
    dataset = build(official_root, 'annotations/deeplesion_test.json', check_files=False)
    assert [[inst['ann_id'] for inst in dataset.get_data_info(i)['instances']]
            for i in range(len(dataset))] == [[4890], [4892]]
    only_noisy = dict(OFFICIAL_RECORDS, annotations=[
        dict(a, noisy=1) if a['image_id'] == 4795 else a for a in OFFICIAL_RECORDS['annotations']])
    write_json(official_root / 'annotations' / 'deeplesion_val.json', only_noisy)
    # the image left without lesions is dropped, as for the csv
    dataset = build(official_root, 'annotations/deeplesion_val.json', check_files=False)
    assert [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))] == [4794]
    assert dataset.split == 'val'


def test_split_named_by_the_file_must_agree(official_root):
    assert build(official_root, 'annotations/deeplesion_test.json', split='test',
                 check_files=False).split == 'test'
    with pytest.raises(ValueError, match=r"deeplesion_test.json: the file holds the 'test' "
                       r"split \(one split per JSON file\) but split='train' was asked for"):
        build(official_root, 'annotations/deeplesion_test.json', split='train',
              check_files=False)
    # a name without a split: `split` only names it
    write_json(official_root / 'lesions.json', OFFICIAL_RECORDS)
    assert build(official_root, 'lesions.json', split=2, check_files=False).split == 'val'
    assert build(official_root, 'lesions.json', check_files=False).split == 'json'


def test_format_is_recognised_from_the_content(tmp_path):
    assert annotation_file_format(write_json(tmp_path / 'a.csv', {'images': []})) == 'json'
    (tmp_path / 'b.json').write_text('\ufeff  \n{"images": []}', encoding='utf-8')
    assert annotation_file_format(str(tmp_path / 'b.json')) == 'json'
    (tmp_path / 'DL_info.csv').write_text('File_name,Patient_index\n')
    assert annotation_file_format(str(tmp_path / 'DL_info.csv')) == 'csv'
    with pytest.raises(FileNotFoundError, match='annotation file not found: .*missing.json'):
        annotation_file_format(str(tmp_path / 'missing.json'))


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """A generated release with its test split also written as an official JSON file."""
    root = str(tmp_path_factory.mktemp('synthetic_deeplesion_json'))
    make_synthetic_deeplesion(root, num_patients=16, seed=0, image_size=64, noisy_fraction=0.3,
                              progress=False)
    rows = [r for r in read_dl_info(osp.join(root, 'DL_info.csv')) if r.train_val_test == 3]
    assert any(r.possibly_noisy for r in rows) and not all(r.possibly_noisy for r in rows)
    write_deeplesion_json(osp.join(root, 'deeplesion_test.json'), rows)
    return root, rows


COMPARED_KEYS = ('img_path', 'width', 'height', 'series_dir', 'key_slice', 'slice_interval',
                 'pixel_spacing', 'patient_index', 'study_index', 'series_id')


@pytest.mark.parametrize('exclude_noisy', [True, False])
def test_json_items_match_the_csv_items_of_the_split(generated, exclude_noisy):
    root, rows = generated
    from_csv = build(root, 'DL_info.csv', split='test', exclude_noisy=exclude_noisy)
    from_json = build(root, 'deeplesion_test.json', exclude_noisy=exclude_noisy)
    assert from_json.split == 'test' and len(from_json) == len(from_csv) > 1
    csv_stats, json_stats = from_csv.get_split_statistics(), from_json.get_split_statistics()
    for key in ('images', 'lesions', 'patients', 'noisy_lesions'):
        assert json_stats[key] == csv_stats[key], key
    assert csv_stats['lesions'] == len([r for r in rows
                                        if not (exclude_noisy and r.possibly_noisy)])
    for index in range(len(from_csv)):
        a, b = from_csv.get_data_info(index), from_json.get_data_info(index)
        assert {key: a[key] for key in COMPARED_KEYS} == {key: b[key] for key in COMPARED_KEYS}
        windows_of_the_slice = {w for r in rows if r.file_name.startswith(
            f"{a['series_dir'].split(osp.sep)[-1]}_{a['key_slice']:03d}") for w in r.dicom_windows}
        assert len(b['dicom_windows']) == 1 and b['dicom_windows'][0] in windows_of_the_slice
        np.testing.assert_allclose([inst['bbox'] for inst in b['instances']],
                                   [inst['bbox'] for inst in a['instances']], atol=1e-9)
        assert ([inst['possibly_noisy'] for inst in b['instances']]
                == [inst['possibly_noisy'] for inst in a['instances']])


def test_json_items_load_the_same_slices_as_the_csv_items(generated):
    root, _ = generated
    loader = [LoadCTSlices(num_slices=3, slice_interval=2.5)]
    from_csv = DeepLesionDataset(data_root=root, split='test', pipeline=loader)
    from_json = DeepLesionDataset(data_root=root, ann_file='deeplesion_test.json',
                                  pipeline=loader)
    for index in (0, len(from_csv) - 1):
        np.testing.assert_array_equal(from_json[index]['img'], from_csv[index]['img'])
        assert from_json[index]['slice_paths'] == from_csv[index]['slice_paths']


def test_data_fraction_keeps_the_same_patients_as_for_the_csv(generated):
    root, _ = generated
    kwargs = dict(data_fraction=0.5, fraction_seed=1)
    from_csv = build(root, 'DL_info.csv', split='test', **kwargs)
    from_json = build(root, 'deeplesion_test.json', **kwargs)
    all_patients = build(root, 'DL_info.csv', split='test').get_split_statistics()['patients']
    assert from_json.get_split_statistics() == from_csv.get_split_statistics()
    assert all_patients >= 2
    assert from_csv.get_split_statistics()['patients'] == round(all_patients / 2)


def test_missing_and_wrong_sized_key_slices_name_the_image_record(generated, tmp_path):
    root, _ = generated
    content = json.load(open(osp.join(root, 'deeplesion_test.json')))
    first = content['images'][0]
    width, height = first['width'], first['height']
    first['width'] = width + 1
    write_json(osp.join(root, 'wrong_size_test.json'), content)
    first_id = first['id']
    with pytest.raises(ValueError, match=rf'wrong_size_test.json: image id {first_id}: '
                       rf'annotated size {width + 1}x{height} but the key slice'):
        build(root, 'wrong_size_test.json')
    first.update(width=width, file_name='000999_01_01/001.png', slice_no=1)
    write_json(osp.join(root, 'missing_test.json'), content)
    with pytest.raises(FileNotFoundError, match=rf'missing_test.json: image id {first_id}: key '
                       r'slice file .*000999_01_01/001.png not found'):
        build(root, 'missing_test.json')


def test_round_trip_through_the_writer(generated):
    root, rows = generated
    images = read_deeplesion_json(osp.join(root, 'deeplesion_test.json'))
    assert len(images) == len({r.file_name for r in rows})
    assert sum(len(image.annotations) for image in images) == len(rows)
    first = rows[0]
    box = images[0].annotations[0].bbox_xyxy
    np.testing.assert_allclose(box, np.array(first.bounding_box) - 1.0, atol=1e-9)
    assert images[0].slice_interval == first.spacing_mm_px[2]


def _with(path, **changes):
    content = json.loads(json.dumps(OFFICIAL_RECORDS))
    for dotted, value in changes.items():
        listname, index, field = dotted.split('__')
        if value is None:
            del content[listname][int(index)][field]
        else:
            content[listname][int(index)][field] = value
    return write_json(path, content)


@pytest.mark.parametrize('changes,message', [
    (dict(images__1__file_name='000002_02_03_007.png'),
     r"images\[1\] \(id 4795\): 'file_name' must be '<patient>_<study>_<series>/<slice>.png'"),
    (dict(images__1__id=4794), r'images\[1\]: image id 4794 is used twice'),
    (dict(images__0__slice_no=110),
     r"images\[0\] \(id 4794\): 'slice_no' 110 is not the slice number"),
    (dict(images__0__slice_intv=None), r"images\[0\] \(id 4794\): missing field 'slice_intv'"),
    (dict(images__0__spacing=488.281), r"images\[0\] \(id 4794\): 'spacing'/'slice_intv': "),
    (dict(images__0__width='512'), r"images\[0\] \(id 4794\): 'width' must be an integer"),
    (dict(annotations__2__image_id=1), r"annotations\[2\] \(id 4892\): 'image_id' 1 is not "
     'the id of any image'),
    (dict(annotations__1__id=4890), r'annotations\[1\]: annotation id 4890 is used twice'),
    (dict(annotations__0__bbox=[1.0, 2.0, 0.0, 3.0]),
     r"annotations\[0\] \(id 4890\): 'bbox' \[x, y, w, h\] must have w > 0 and h > 0"),
    (dict(annotations__0__bbox=[1.0, 2.0, 3.0]),
     r"annotations\[0\] \(id 4890\): 'bbox' must be a list of 4 finite numbers"),
    (dict(annotations__0__noisy=2), r"annotations\[0\] \(id 4890\): 'noisy' must be 0 or 1"),
    (dict(annotations__0__category_id=2),
     r"annotations\[0\] \(id 4890\): 'category_id' 2 is not the lesion category \(1\)"),
])
def test_malformed_records_are_one_line_errors_naming_the_record(tmp_path, changes, message):
    path = _with(tmp_path / 'deeplesion_test.json', **changes)
    with pytest.raises(ValueError, match='deeplesion_test.json: ' + message) as error:
        read_deeplesion_json(path)
    assert '\n' not in str(error.value)


def test_files_that_are_not_official_annotations(tmp_path):
    (tmp_path / 'broken.json').write_text('{"images": [')
    with pytest.raises(ValueError, match=r'broken.json: not a JSON annotation file'):
        read_deeplesion_json(str(tmp_path / 'broken.json'))
    with pytest.raises(ValueError, match=r"coco.json: expected a JSON object with the lists "
                       r"'images' and 'annotations'"):
        read_deeplesion_json(write_json(tmp_path / 'coco.json', {'images': []}))
    two_categories = dict(OFFICIAL_RECORDS, categories=[{'id': 1}, {'id': 2}])
    with pytest.raises(ValueError, match=r"two.json: 'categories' must hold the one lesion "
                       'category'):
        read_deeplesion_json(write_json(tmp_path / 'two.json', two_categories))
    bad_id = dict(OFFICIAL_RECORDS, categories=[{'id': 'lesion'}])
    with pytest.raises(ValueError, match=r"bad_id.json: categories\[0\]: 'id' must be an "
                       "integer, got 'lesion'"):
        read_deeplesion_json(write_json(tmp_path / 'bad_id.json', bad_id))
    empty = write_json(tmp_path / 'deeplesion_val.json', dict(images=[], annotations=[]))
    with pytest.raises(ValueError, match=r"deeplesion_val.json: the file has no image record"):
        build(tmp_path, osp.basename(empty))


def test_the_paper_config_tests_on_an_official_file_under_the_mp3d_protocol(generated):
    """The documented ``--cfg-options`` build the official test set and metric."""
    from mmdet.registry import DATASETS, METRICS
    from mmdet.utils import register_all_modules
    from mp3d_mmdet.utils.config import load_config

    register_all_modules()
    root, _ = generated
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = load_config(osp.join(repo, 'configs', 'mp3d_fpn_deeplesion_2x.py'), {
        'test_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.ann_file': 'deeplesion_test.json',
        'test_dataloader.dataset.exclude_noisy': False,
        'test_evaluator.protocol': 'mp3d'})
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    assert dataset.annotation_format == 'json' and dataset.split == 'test'
    reference = build(root, 'DL_info.csv', split='test', exclude_noisy=False)
    assert dataset.get_split_statistics() == reference.get_split_statistics()
    sample = dataset[0]['data_samples']
    assert sample.img_id == dataset.get_data_info(0)['img_id']
    assert METRICS.build(cfg.test_evaluator).protocol.name == 'mp3d'


def _extended(path, images=(), annotations=()):
    content = json.loads(json.dumps(OFFICIAL_RECORDS))
    content['images'] += list(images)
    content['annotations'] += list(annotations)
    return write_json(path, content)


def test_one_lesion_listed_twice_is_refused_like_a_repeated_csv_row(tmp_path):
    again = dict(OFFICIAL_RECORDS['annotations'][0], id=4999)  # a new id, same image and box
    path = _extended(tmp_path / 'deeplesion_test.json', annotations=[again])
    with pytest.raises(ValueError, match=r'deeplesion_test.json: annotations\[3\] \(id 4999\) '
                       r'repeats annotations\[0\] \(id 4890\) \(the same box on key slice '
                       r'000001_01_01/109.png\); each lesion must be listed once'):
        read_deeplesion_json(path)
    elsewhere = dict(again, image_id=4795)  # the same box on another key slice: two lesions
    images = read_deeplesion_json(_extended(tmp_path / 'ok.json', annotations=[elsewhere]))
    assert [len(image.annotations) for image in images] == [2, 2]


def test_two_image_records_of_one_key_slice_are_refused(tmp_path):
    twin = dict(OFFICIAL_RECORDS['images'][0], id=5000)
    path = _extended(tmp_path / 'deeplesion_test.json', images=[twin],
                     annotations=[dict(OFFICIAL_RECORDS['annotations'][2], id=4999,
                                       image_id=5000)])
    with pytest.raises(ValueError, match=r"deeplesion_test.json: images\[2\] \(id 5000\): "
                       r"'file_name' '000001_01_01/109.png' is already the key slice of "
                       r'images\[0\] \(id 4794\); one image record per key slice') as error:
        read_deeplesion_json(path)
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('bbox', [[225.169, 89.0204, 1e-6, 1e-6], [225.169, 89.0204, 15.0, 1e-6],
                                  [0.0, 0.0, 0.001, 5.0]])
def test_a_box_that_vanishes_in_float32_is_refused(tmp_path, bbox):
    path = _with(tmp_path / 'deeplesion_test.json', annotations__0__bbox=bbox)
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 4890\): 'bbox' \[x, y, w, h\] "
                       r'must have w > 0 and h > 0: a box of positive width and height \(sides '
                       r'of at least 0.01 px between float32 corners'):
        read_deeplesion_json(path)


def test_deeply_nested_file_is_a_one_line_error(tmp_path):
    path = tmp_path / 'deeplesion_test.json'
    path.write_text('{"images": ' + '[' * 100000 + ']' * 100000 + ', "annotations": []}')
    with pytest.raises(ValueError, match=r'deeplesion_test.json: not a JSON annotation file '
                       r'\(nested deeper than 32 levels: line 1 column 43') as error:
        read_deeplesion_json(str(path))
    assert '\n' not in str(error.value)

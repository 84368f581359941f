"""FROC records: built from data samples, written to JSON and read back, and mmdet's
``mim test --out`` pickle read safely."""
import json
import math
import pickle

import numpy as np
import pytest
from mmengine.fileio import dump

from helpers.froc_samples import data_sample, lesion
from mp3d_mmdet.evaluation.metrics import (dump_records_json, load_detection_dump,
                                           load_records_json, record_from_data_sample)
from mp3d_mmdet.evaluation.metrics.froc_records import RECORDS_JSON_FORMAT

A, B = [0, 0, 9, 9], [20, 20, 29, 29]


def two_records():
    return [
        record_from_data_sample(data_sample(0, 1.0, [lesion(A, 3, 7.5), lesion(B, ignore=1)],
                                            [A + [0.9], B + [0.25]])),
        record_from_data_sample(string_id_sample()),
    ]


def string_id_sample():
    """An image without lesions or detections, its id a string (as COCO-style ids may be)."""
    sample = data_sample(7, 5.0, [], [])
    sample.set_metainfo(dict(img_id='x7'))
    return sample


def test_record_keeps_predictions_and_unignored_lesions():
    record = two_records()[0]
    assert record['img_id'] == 0 and record['img_path'] == '000.png'
    np.testing.assert_array_equal(record['pred_bboxes'], [A, B])
    assert record['pred_bboxes'].dtype == np.float32
    np.testing.assert_array_equal(record['pred_scores'], np.float32([0.9, 0.25]))
    np.testing.assert_array_equal(record['gt_bboxes'], [A])  # the ignored lesion left out
    np.testing.assert_array_equal(record['gt_lesion_types'], [3])
    np.testing.assert_array_equal(record['gt_long_diameters_mm'], [7.5])
    assert record['slice_interval'] == 1.0
    empty = two_records()[1]
    assert empty['pred_bboxes'].shape == (0, 4) and empty['gt_bboxes'].shape == (0, 4)


def test_missing_metadata_is_an_error_only_when_required():
    sample = data_sample(3, 1.0, [dict(bbox=A, ignore_flag=0)], [])
    with pytest.raises(KeyError, match=r"img_id=3: instances\[0\] has no 'lesion_type'"):
        record_from_data_sample(sample)
    record = record_from_data_sample(sample, require_metadata=False)
    assert record['gt_lesion_types'].tolist() == [-1]
    assert math.isnan(record['gt_long_diameters_mm'][0])
    sample = data_sample(4, 1.0, [], []).to_dict()
    del sample['instances']
    with pytest.raises(KeyError, match="img_id=4 has no 'instances' .add it to PackDetInputs"):
        record_from_data_sample(sample)


def test_bad_prediction_shapes_are_named():
    sample = data_sample(5, 1.0, [], [A + [0.5]]).to_dict()
    sample['pred_instances']['scores'] = np.float32([0.5, 0.4])
    with pytest.raises(ValueError, match=r'img_id=5: pred_instances must hold bboxes \(n, 4\)'):
        record_from_data_sample(sample)


def test_json_round_trip_keeps_values_and_nan(tmp_path):
    records = two_records()
    records[0]['gt_long_diameters_mm'][0] = math.nan
    records[1]['slice_interval'] = math.nan
    path = str(tmp_path / 'sub' / 'run.froc_records.json')
    dump_records_json(records, path)
    content = json.loads(open(path).read())
    assert content['format'] == RECORDS_JSON_FORMAT and content['version'] == 1
    assert content['images'][0]['gt_long_diameters_mm'] == [None]  # valid JSON, no NaN
    loaded = load_records_json(path)
    assert [r['img_id'] for r in loaded] == [0, 'x7']
    for got, want in zip(loaded, records):
        for key in ('pred_bboxes', 'pred_scores', 'gt_bboxes', 'gt_lesion_types',
                    'gt_long_diameters_mm'):
            np.testing.assert_array_equal(got[key], want[key])
            assert got[key].dtype == want[key].dtype
    assert math.isnan(loaded[1]['slice_interval'])


def test_bad_json_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='prediction file not found: .*none.json'):
        load_records_json(str(tmp_path / 'none.json'))
    (tmp_path / 'broken.json').write_text('{"format": ')
    with pytest.raises(ValueError, match='broken.json is not valid JSON'):
        load_records_json(str(tmp_path / 'broken.json'))
    (tmp_path / 'coco.json').write_text('{"images": [], "annotations": []}')
    with pytest.raises(ValueError, match='coco.json is not an FROC record file'):
        load_records_json(str(tmp_path / 'coco.json'))
    dump_records_json(two_records(), str(tmp_path / 'edit.json'))
    content = json.loads((tmp_path / 'edit.json').read_text())
    del content['images'][1]['gt_bboxes']
    (tmp_path / 'edit.json').write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r'edit.json: images\[1\] is malformed'):
        load_records_json(str(tmp_path / 'edit.json'))
    content['images'][1]['gt_bboxes'] = [A]  # one box, no type or diameter
    (tmp_path / 'edit.json').write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r'images\[1\] has inconsistent lengths'):
        load_records_json(str(tmp_path / 'edit.json'))


def test_detection_dump_is_read_with_the_allow_list(tmp_path):
    path = str(tmp_path / 'results.pkl')
    dump([data_sample(0, 1.0, [lesion(A)], [A + [0.9]]).to_dict()], path)
    (sample, ) = load_detection_dump(path)
    record = record_from_data_sample(sample)
    np.testing.assert_array_equal(record['pred_bboxes'], [A])

    class Payload:
        def __reduce__(self):
            return (print, ('executed',))

    with open(tmp_path / 'evil.pkl', 'wb') as f:
        pickle.dump([dict(img_id=0, pred_instances={}, x=Payload())], f)
    with pytest.raises(ValueError, match='evil.pkl'):
        load_detection_dump(str(tmp_path / 'evil.pkl'))
    dump(dict(img_id=0), str(tmp_path / 'dict.pkl'))
    with pytest.raises(ValueError, match='dict.pkl: expected a list of data-sample dicts'):
        load_detection_dump(str(tmp_path / 'dict.pkl'))
    dump([dict(img_id=0)], str(tmp_path / 'nopred.pkl'))
    with pytest.raises(ValueError, match='nopred.pkl: entry 0 has no pred_instances'):
        load_detection_dump(str(tmp_path / 'nopred.pkl'))

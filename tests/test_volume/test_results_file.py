"""The batch results file's reader: one-line errors naming file and line, arrays back."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mp3d_mmdet.volume import RESULTS_FILE_NAME, VolumeResultsFile, read_volume_detections

SETTINGS = {'config': '/models/tiny.py', 'checkpoint': '/models/tiny.pth', 'score_thr': 0.5,
            'iou_thr': 0.3, 'max_gap': 1, 'min_slices': 1}

GOOD = {'name': 'v', 'source': '/x/v.nii', 'shape_xyz': [4, 4, 2],
        'spacing_mm_xyz': [1.0, 1.0, 2.5], 'z_offset': 0,
        'boxes': [[0, 0, 0, 1, 1, 1, 0.5]]}
HEADER = json.dumps({'header': {'format': 'mp3d-volume-detections-3d', 'format_version': 1,
                                'settings': SETTINGS}})


@pytest.mark.parametrize('lines, message', [
    ([], 'empty file, expected the header line'),
    ([json.dumps(GOOD)], 'line 1: expected the header line {"header": {...}} first'),
    ([json.dumps({'header': {'format': 'other', 'format_version': 1}})],
     "line 1: header format 'other' is not 'mp3d-volume-detections-3d'"),
    ([HEADER.replace('"format_version": 1', '"format_version": 2')],
     'line 1: header format_version 2 is not supported'),
    ([HEADER, '{"name": "v", '], 'line 2: not valid JSON'),
    ([HEADER, json.dumps(GOOD), '[1, 2]'], 'line 3: expected a JSON object, got list'),
    ([HEADER, json.dumps({k: v for k, v in GOOD.items() if k != 'z_offset'})],
     "line 2: missing key(s) ['z_offset']"),
    ([HEADER, json.dumps(dict(GOOD, z_offset=True))], "'z_offset' must be an integer"),
    ([HEADER, json.dumps(dict(GOOD, shape_xyz=[4, 4]))], "'shape_xyz' must be 3 integers"),
    ([HEADER, json.dumps(dict(GOOD, spacing_mm_xyz=[1, 0, 1]))],
     "'spacing_mm_xyz' must be 3 finite numbers > 0"),
    ([HEADER, json.dumps(dict(GOOD, boxes=[[0, 0, 0, 1, 1, 1]]))],
     'line 2: box 0 must be 7 finite numbers'),
    ([HEADER, json.dumps(dict(GOOD, boxes=[[0, 0, 0, 1, 1, 1, float('nan')]]))],
     'line 2: box 0 must be 7 finite numbers'),
    ([HEADER, json.dumps(dict(GOOD, boxes=[[0, 0, 3, 1, 1, 1, 0.5]]))],
     'line 2: box 0 has x1 > x2, y1 > y2 or z1 > z2'),
    ([HEADER, json.dumps(GOOD), '', json.dumps(GOOD)], 'line 3: blank line'),
    ([HEADER, json.dumps(GOOD), json.dumps(GOOD)], "line 3: volume 'v' repeats line 2"),
])
def test_reader_names_file_and_line_of_malformed_lines(tmp_path, lines, message):
    path = tmp_path / RESULTS_FILE_NAME
    path.write_text(''.join(line + '\n' for line in lines))
    with pytest.raises(ValueError) as info:
        read_volume_detections(str(path))
    assert str(info.value).startswith(f'{path}: ') and message in str(info.value)
    assert '\n' not in str(info.value)


def test_reader_returns_arrays_and_keeps_extra_keys(tmp_path):
    path = tmp_path / RESULTS_FILE_NAME
    empty = dict(GOOD, name='w', boxes=[], note='extra')
    path.write_text('\n'.join([HEADER, json.dumps(GOOD), json.dumps(empty)]) + '\n')
    header, records = read_volume_detections(str(path))
    assert header['settings'] == SETTINGS and list(records) == ['v', 'w']
    np.testing.assert_array_equal(records['v']['boxes'], [[0, 0, 0, 1, 1, 1, 0.5]])
    assert records['w']['boxes'].shape == (0, 7) and records['w']['note'] == 'extra'
    with pytest.raises(FileNotFoundError, match='volume detections file not found: '):
        read_volume_detections(str(tmp_path / 'none.jsonl'))
    with pytest.raises(ValueError, match='line 2: .*pass --restart'):
        path.write_text(HEADER + '\nnot json\n' + json.dumps(GOOD) + '\n')
        VolumeResultsFile(str(tmp_path), SETTINGS, restart_option='--restart')
    assert os.listdir(tmp_path) == [RESULTS_FILE_NAME] and osp.getsize(path) > 0

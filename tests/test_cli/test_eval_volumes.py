"""mp3d-eval-volumes: the LENS 3D FROC of a batch results file against the generator's 3D
ground truth (lesions_3d.pkl) and against DL_info.csv's key-slice boxes."""
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest

from mp3d_mmdet.cli import eval_volumes
from mp3d_mmdet.datasets.dl_info import parse_subvolume_name
from mp3d_mmdet.datasets.lesions_3d import read_lens_annotations
from mp3d_mmdet.synthetic import make_synthetic_deeplesion
from mp3d_mmdet.volume import RESULTS_FORMAT


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_3d'))
    summary = make_synthetic_deeplesion(root, num_patients=4, seed=1, image_size=64,
                                        progress=False)
    return root, summary


def write_results(path, volumes):
    """A results file as mp3d-detect-volumes writes it: ``volumes`` = {name: (n, 7) boxes in
    voxel indices}; DeepLesion sub-volumes get their first slice as z_offset."""
    lines = [{'header': {'format': RESULTS_FORMAT, 'format_version': 1, 'settings': {}}}]
    for name, boxes in volumes.items():
        first = parse_subvolume_name(name)[1]
        lines.append(dict(name=name, source=f'/data/{name}', shape_xyz=[64, 64, 10],
                          spacing_mm_xyz=[5.0, 5.0, 2.5], z_offset=first,
                          boxes=np.asarray(boxes, dtype=float).reshape(-1, 7).tolist()))
    with open(path, 'w') as handle:
        handle.write(''.join(json.dumps(line) + '\n' for line in lines))
    return str(path)


def perfect_results(ground_truth, shift_z=0.0, far_score=0.1):
    """Each lesion's own 3D box (in voxel indices) with score 0.9, and one far false positive
    per sub-volume."""
    volumes = {}
    for name, boxes in ground_truth.boxes.items():
        first = parse_subvolume_name(name)[1]
        voxel = boxes.copy()
        voxel[:, [2, 5]] -= first - shift_z
        hits = np.concatenate([voxel, np.full((len(voxel), 1), 0.9)], axis=1)
        far = [[60, 60, 0, 63, 63, 0, far_score]]
        volumes[name] = np.concatenate([hits, far])
    return volumes


def run(argv):
    return eval_volumes.evaluate(eval_volumes.parse_args(argv))


def test_perfect_candidates_against_the_3d_ground_truth(generated, tmp_path, capsys):
    root, summary = generated
    truth = read_lens_annotations(summary['lesions_3d_path'], 'test')
    assert sum(len(b) for b in truth.boxes.values()) >= 2
    results = write_results(tmp_path / 'detections_3d.jsonl', perfect_results(truth))
    report = run([results, '--gt', summary['lesions_3d_path'], '--split', 'test',
                  '--plot', str(tmp_path / 'froc_3d.png'), '--summary',
                  str(tmp_path / 'summary.json')])
    # every lesion hit before the first false positive
    assert report['subsets']['all']['sensitivity'] == [1.0] * 7
    assert report['subsets']['all']['lesions'] == sum(len(b) for b in truth.boxes.values())
    sizes = [report['subsets'][k]['lesions']
             for k in ('size_lt10mm', 'size_10-30mm', 'size_gt30mm')]
    assert sum(sizes) == report['subsets']['all']['lesions']
    out = capsys.readouterr().out
    assert 'LENS 3D FROC: IOBB >= 0.3 (inclusive voxel sizes)' in out
    assert (tmp_path / 'froc_3d.png').read_bytes()[:4] == b'\x89PNG'
    assert json.loads((tmp_path / 'summary.json').read_text())['num_subvolumes'] == len(
        truth.boxes)


def test_candidates_one_slice_off_miss_key_slices_but_not_3d_boxes(generated, tmp_path):
    root, summary = generated
    truth = read_lens_annotations(summary['lesions_3d_path'], 'test')
    dl_info = osp.join(root, 'DL_info.csv')
    on_target = write_results(tmp_path / 'a.jsonl', perfect_results(truth))
    report = run([on_target, '--gt', dl_info, '--split', 'test', '--keep-noisy'])
    assert report['key_slice_gt'] and report['subsets']['all']['sensitivity'][0] == 1.0
    # every candidate moved past the end of its lesion: no key slice inside any more
    depth = max(float((b[:, 5] - b[:, 2]).max()) for b in truth.boxes.values()) + 1
    off = write_results(tmp_path / 'b.jsonl', perfect_results(truth, shift_z=depth))
    report = run([off, '--gt', dl_info, '--split', 'test', '--keep-noisy'])
    assert report['subsets']['all']['sensitivity'] == [0.0] * 7


def test_missing_volumes_and_foreign_pickles_are_one_line_errors(generated, tmp_path, capsys):
    root, summary = generated
    truth = read_lens_annotations(summary['lesions_3d_path'], 'test')
    volumes = perfect_results(truth)
    dropped = sorted(volumes)[0]
    del volumes[dropped]
    results = write_results(tmp_path / 'partial.jsonl', volumes)
    assert eval_volumes.main([results, '--gt', summary['lesions_3d_path']]) == 1
    err = capsys.readouterr().err
    assert f'have no results in {results} (first: {dropped})' in err and err.count('\n') == 1

    evil = tmp_path / 'evil.pkl'  # unpickling would import and hand back os.getcwd
    evil.write_bytes(pickle.dumps({'test': {'000001_01_01_001-002': os.getcwd}}))
    assert eval_volumes.main([results, '--gt', str(evil)]) == 1
    assert 'evil.pkl' in capsys.readouterr().err
    assert eval_volumes.main([results, '--gt', summary['lesions_3d_path'],
                              '--split', 'val', '--overlap-thr', '0']) == 1
    assert '--overlap-thr must be in (0, 1]' in capsys.readouterr().err
    assert eval_volumes.main([results, '--gt', summary['lesions_3d_path'], '--keep-noisy']) == 1
    assert '--keep-noisy applies to DL_info.csv' in capsys.readouterr().err
    assert eval_volumes.main([results, '--gt', summary['lesions_3d_path'], '--fps', '-1']) == 1
    assert '--fps: fps must be finite and >= 0' in capsys.readouterr().err


def test_a_tiny_model_end_to_end_on_generated_sub_volumes(generated, tmp_path, capsys):
    """mp3d-detect-volumes over the generated test split, then mp3d-eval-volumes against both
    ground truths: the report is the LENS FROC of exactly those candidates."""
    from helpers.volume_fixtures import write_tiny_model
    from mp3d_mmdet.cli import detect_volumes
    from mp3d_mmdet.evaluation import sens_at_fp_3d
    from mp3d_mmdet.volume import read_volume_detections

    root, summary = generated
    cfg, ckpt = write_tiny_model(str(tmp_path))
    out = str(tmp_path / 'batch')
    assert detect_volumes.main(['--deeplesion', root, '--split', 'test', '--config', cfg,
                                '--checkpoint', ckpt, '--out', out, '--score-thr', '0.05',
                                '--no-progress']) == 0, capsys.readouterr().err
    results = osp.join(out, 'detections_3d.jsonl')
    _, records = read_volume_detections(results)
    truth = read_lens_annotations(summary['lesions_3d_path'], 'test')
    assert sorted(records) == sorted(truth.boxes)  # every test sub-volume, nothing else
    report = run([results, '--gt', summary['lesions_3d_path']])
    boxes = []
    for name in truth.boxes:
        b = records[name]['boxes'].copy()
        b[:, [2, 5]] += records[name]['z_offset']
        boxes.append(b)
    expected = sens_at_fp_3d(boxes, list(truth.boxes.values()))
    np.testing.assert_allclose(report['subsets']['all']['sensitivity'], expected)
    assert report['num_subvolumes'] == len(truth.boxes)
    key_slice = run([results, '--gt', osp.join(root, 'DL_info.csv')])
    assert key_slice['key_slice_gt'] and key_slice['num_subvolumes'] == len(truth.boxes)
    assert np.all(np.diff(key_slice['subsets']['all']['sensitivity']) >= 0)

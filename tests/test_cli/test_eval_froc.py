"""mp3d-eval-froc: the FROC report from a saved prediction file (JSON records, mmdet pickle,
ground truth from the file, a DeepLesion csv or an official JSON), under both protocols."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.fileio import dump

from helpers.froc_samples import data_sample, lesion
from mp3d_mmdet.cli import eval_froc
from mp3d_mmdet.evaluation.metrics import FROCMetric

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'eval_froc.py')

# noisy warnings of empty breakdown subsets in these tiny sets
pytestmark = pytest.mark.filterwarnings('ignore:FROCMetric. .* subset.s. without lesions')

A, B, C = [0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49]
FAR = [200, 200, 209, 209]


def evaluate(argv):
    """The metrics mp3d-eval-froc reports for ``argv``."""
    return eval_froc.evaluate(eval_froc.parse_args(argv))


def samples():
    # ranked: A hit, FAR FP, B hit, FAR FP over 2 images / 3 lesions:
    # FP/image 0 .5 .5 1, sensitivity 1/3 1/3 2/3 2/3
    return [
        data_sample(0, 1.0, [lesion(A), lesion(C, 5, 35.0)], [A + [0.9], FAR + [0.5]]),
        data_sample(1, 5.0, [lesion(B)], [FAR + [0.8], B + [0.6]]),
    ]


EXPECTED = {'froc/sens@0.5': 2 / 3, 'froc/sens@1': 2 / 3, 'froc/sens@16': 2 / 3,
            'froc/mean_0.5-4': 2 / 3}


def dump_mim_test_pickle(path):
    """What `mim test --out X.pkl` writes: DumpDetResults' list of data-sample dicts."""
    dump([s.to_dict() for s in samples()], str(path))


def test_pickle_with_stored_ground_truth(tmp_path):
    dump_mim_test_pickle(tmp_path / 'results.pkl')
    metrics = evaluate([str(tmp_path / 'results.pkl'), '--plot-dir', str(tmp_path),
                        '--summary', str(tmp_path / 'summary.json')])
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key
    assert metrics['froc/type_lung/sens@16'] == 0.0  # C is never detected
    png = (tmp_path / 'froc_curve.png').read_bytes()
    assert png[:4] == b'\x89PNG' and len(png) > 10_000
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['num_images'] == 2 and summary['num_lesions'] == 3
    assert summary['metrics']['froc/sens@0.5'] == pytest.approx(2 / 3)
    assert summary['metrics']['froc/type_bone/sens@0.5'] is None  # NaN -> null


def test_json_records_round_trip_give_the_same_report(tmp_path):
    metric = FROCMetric(outfile_prefix=str(tmp_path / 'run'), breakdown_metrics=True)
    metric.process(None, [s.to_dict() for s in samples()])
    direct = metric.compute_metrics(metric.results)
    metrics = evaluate([str(tmp_path / 'run.froc_records.json')])
    assert metrics == pytest.approx({f'froc/{k}': v for k, v in direct.items()}, nan_ok=True)


def test_pickle_without_ground_truth_asks_for_ann(tmp_path, capsys):
    sample = samples()[0].to_dict()
    del sample['instances']
    dump([sample], str(tmp_path / 'results.pkl'))
    assert eval_froc.main([str(tmp_path / 'results.pkl'), '--no-breakdowns']) == 1
    err = capsys.readouterr().err
    assert err.startswith('mp3d-eval-froc: error: ') and 'has no ground truth' in err
    assert 'pass --ann DL_info.csv' in err


def test_bad_prediction_files(tmp_path, capsys):
    tool = eval_froc
    assert tool.main([str(tmp_path / 'missing.pkl')]) == 1
    assert 'prediction file not found' in capsys.readouterr().err
    (tmp_path / 'x.txt').write_text('1')
    assert tool.main([str(tmp_path / 'x.txt')]) == 1
    assert "unknown prediction file type '.txt'" in capsys.readouterr().err
    (tmp_path / 'other.json').write_text('{"images": []}')
    assert tool.main([str(tmp_path / 'other.json')]) == 1
    assert 'is not an FROC record file' in capsys.readouterr().err


# --------------------------------------------------------------------------- DeepLesion csv
CSV_HEADER = ('File_name,Patient_index,Study_index,Series_ID,Key_slice_index,'
              'Measurement_coordinates,Bounding_boxes,Lesion_diameters_Pixel_,'
              'Normalized_lesion_location,Coarse_lesion_type,Possibly_noisy,Slice_range,'
              'Spacing_mm_px_,Image_size,DICOM_windows,Patient_gender,Patient_age,'
              'Train_Val_Test')


def csv_row(file_name, box_1based, lesion_type, long_px, interval, split, noisy=0):
    patient, study, series, key = (int(v) for v in file_name[:-4].split('_'))
    x1, y1, x2, y2 = box_1based
    recist = f'"{x1}, {y1}, {x2}, {y2}, {x1}, {y2}, {x2}, {y1}"'
    return (f'{file_name},{patient},{study},{series},{key},{recist},"{x1}, {y1}, {x2}, {y2}",'
            f'"{long_px}, {long_px / 2}","0.5, 0.5, 0.5",{lesion_type},{noisy},'
            f'"{key - 5}, {key + 5}","0.8, 0.8, {interval}","512, 512","-175, 275",F,50,{split}')


def write_csv(path):
    # 1-based csv boxes = the 0-based boxes above + 1; pixel spacing 0.8 mm
    rows = [
        csv_row('000001_01_01_010.png', [1, 1, 10, 10], 4, 15.0, 1.0, 3),  # img_id 0: A
        csv_row('000001_01_01_010.png', [41, 41, 50, 50], 5, 43.75, 1.0, 3),  # img_id 0: C
        csv_row('000002_01_01_020.png', [21, 21, 30, 30], 4, 15.0, 5.0, 3),  # img_id 2: B
        csv_row('000003_01_01_030.png', [1, 1, 10, 10], 6, 15.0, 5.0, 3, noisy=1),  # dropped
        csv_row('000004_01_01_040.png', [1, 1, 10, 10], -1, 15.0, 5.0, 1),  # train split
    ]
    path.write_text('\n'.join([CSV_HEADER] + rows) + '\n')


def pickle_with_ids(path, ids, with_gt=True):
    entries = []
    for img_id, sample in zip(ids, samples()):
        entry = sample.to_dict()
        entry['img_id'] = img_id
        if not with_gt:
            del entry['instances'], entry['slice_interval']
        entries.append(entry)
    dump(entries, str(path))


def test_ground_truth_from_deeplesion_csv(tmp_path):
    write_csv(tmp_path / 'DL_info.csv')
    pickle_with_ids(tmp_path / 'results.pkl', [0, 2], with_gt=False)
    metrics = evaluate([str(tmp_path / 'results.pkl'), '--ann',
                        str(tmp_path / 'DL_info.csv'), '--split', 'test'])
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key
    # lesion metadata from the csv: C is a lung lesion of 43.75 px * 0.8 = 35 mm
    assert metrics['froc/type_lung/sens@16'] == 0.0
    assert metrics['froc/size_gt30mm/sens@16'] == 0.0
    # image 2 alone (5 mm): FAR then B -> FP/image 1 1: nothing below 1 FP, all at 1 FP
    assert metrics['froc/interval_gt2mm/sens@0.5'] == 0.0
    assert metrics['froc/interval_gt2mm/sens@1'] == 1.0


def test_ground_truth_from_official_json_under_the_mp3d_protocol(tmp_path, capsys):
    from mp3d_mmdet.datasets import read_dl_info, write_deeplesion_json
    write_csv(tmp_path / 'DL_info.csv')
    rows = [r for r in read_dl_info(str(tmp_path / 'DL_info.csv')) if r.train_val_test == 3]
    write_deeplesion_json(str(tmp_path / 'deeplesion_test.json'), rows)  # image ids 1, 2, 3
    pickle_with_ids(tmp_path / 'results.pkl', [1, 2], with_gt=False)
    metrics = evaluate([str(tmp_path / 'results.pkl'), '--ann',
                        str(tmp_path / 'deeplesion_test.json'), '--protocol', 'mp3d',
                        '--summary', str(tmp_path / 'summary.json')])
    # curve (0, 1/3) (.5, 1/3) (.5, 2/3) (1, 2/3): at 0.5 FP the first point (1/3, the
    # 'deeplesion' reading gives 2/3), past the end the line through the last FP step (2/3)
    assert metrics['froc/sens@0.5'] == pytest.approx(1 / 3)
    assert metrics['froc/sens@1'] == metrics['froc/sens@16'] == pytest.approx(2 / 3)
    assert metrics['froc/mean_0.5-4'] == pytest.approx((1 / 3 + 3 * 2 / 3) / 4)
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert (summary['protocol'], summary['legacy_plus_one'], summary['split']) == (
        'mp3d', False, 'test')
    assert summary['num_images'] == 2  # the image with only a noisy lesion is dropped
    assert eval_froc.main([str(tmp_path / 'results.pkl'), '--ann',
                           str(tmp_path / 'deeplesion_test.json'), '--split', 'val']) == 1
    assert "the file holds the 'test' split" in capsys.readouterr().err
    assert eval_froc.main([str(tmp_path / 'results.pkl'), '--protocol', 'lens']) == 1
    assert "unknown FROC protocol 'lens'" in capsys.readouterr().err
    # the official files sit in the release's annotations/ folder: images from the release
    (tmp_path / 'annotations').mkdir()
    write_deeplesion_json(str(tmp_path / 'annotations' / 'deeplesion_test.json'), rows)
    samples, split = eval_froc.attach_annotation_ground_truth(
        eval_froc.load_prediction_samples(str(tmp_path / 'results.pkl')),
        str(tmp_path / 'annotations' / 'deeplesion_test.json'), None, False)
    assert split == 'test' and samples[0]['img_path'] == str(
        tmp_path / 'Images_png' / '000001_01_01' / '010.png')


def test_csv_ids_must_match_the_split(tmp_path, capsys):
    write_csv(tmp_path / 'DL_info.csv')
    tool = eval_froc
    pickle_with_ids(tmp_path / 'results.pkl', [0, 99])
    assert tool.main([str(tmp_path / 'results.pkl'), '--ann', str(tmp_path / 'DL_info.csv')]) == 1
    assert "img_id=99 of the predictions is not a key slice of the 'test' split" in (
        capsys.readouterr().err)
    dump([samples()[0].to_dict()], str(tmp_path / 'one.pkl'))  # img_id 0 only
    assert tool.main([str(tmp_path / 'one.pkl'), '--ann', str(tmp_path / 'DL_info.csv')]) == 1
    assert "1 of the 2 key slices of the 'test' split" in capsys.readouterr().err


def test_command_line(tmp_path):
    dump_mim_test_pickle(tmp_path / 'results.pkl')
    proc = subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path / 'results.pkl'), '--no-map', '--fps', '0.5', '1',
         '--summary', str(tmp_path / 's.json')],
        capture_output=True, encoding='utf-8', errors='replace', timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'FROC: sensitivity (%) at FPs per image' in proc.stdout
    assert '66.67' in proc.stdout
    summary = json.loads((tmp_path / 's.json').read_text())
    assert set(summary['metrics']) >= {'froc/sens@0.5', 'froc/sens@1', 'froc/mean_0.5-4'}
    assert np.isclose(summary['metrics']['froc/sens@1'], 2 / 3)

"""FROCMetric inside mmengine's Evaluator on fake DetDataSamples, with hand-computed values.

The scene (boxes chosen so that IoUs are exactly 0 or 1; "FAR" detections overlap nothing):

======  ========  =====================================================  ====================
image   interval  lesions (type, long diameter)                          detections (score)
======  ========  =====================================================  ====================
0       1 mm      L1 liver 5 mm (box A), L2 lung 20 mm (box B)           A .9, FAR .6, B .4
1       5 mm      L3 liver 40 mm (box C)                                 C .8, FAR .7
2       5 mm      L4 unknown type, 15 mm (box D); + one ignore_flag=1    none
3       1 mm      none                                                   FAR .5
======  ========  =====================================================  ====================

All lesions, ranked: A hit, C hit, FAR, FAR, FAR, B hit -> FP/image 0 0 .25 .5 .75 .75,
sensitivity .25 .5 .5 .5 .5 .75 -> sens@0.5 = .5 (last point with 2 FPs), beyond: .75.
"""
import json
import math
import pickle

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from helpers.froc_samples import data_sample, lesion
from mp3d_mmdet.evaluation import FROCMetric
from mp3d_mmdet.evaluation.metrics import load_records_json

# the scene has no bone/abdomen/... lesion: those subsets warn (checked in one test only)
pytestmark = pytest.mark.filterwarnings('ignore:FROCMetric. .* subset.s. without lesions')

A, B, C, D = [0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49], [60, 60, 69, 69]
FAR = [200, 200, 209, 209]


def scene():
    return [
        data_sample(0, 1.0, [lesion(A, 4, 5.0), lesion(B, 5, 20.0)],
                    [A + [0.9], FAR + [0.6], B + [0.4]]),
        data_sample(1, 5.0, [lesion(C, 4, 40.0)], [C + [0.8], FAR + [0.7]]),
        data_sample(2, 5.0, [lesion(D, -1, 15.0), lesion(FAR, 4, 30.0, ignore=1)], []),
        data_sample(3, 1.0, [], [FAR + [0.5]]),
    ]


def run_evaluator(metric, samples, batch_size=2):
    evaluator = Evaluator(metric)
    for start in range(0, len(samples), batch_size):
        evaluator.process(data_samples=samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def expected_overall():
    return {'froc/sens@0.5': 0.5, 'froc/sens@1': 0.75, 'froc/sens@2': 0.75, 'froc/sens@4': 0.75,
            'froc/sens@8': 0.75, 'froc/sens@16': 0.75, 'froc/mean_0.5-4': 0.6875}


def test_registered_and_built_from_config():
    metric = METRICS.build(dict(type='FROCMetric', fps=[1, 2], mean_fp_range=(1, 2)))
    assert isinstance(metric, FROCMetric)
    assert metric.sens_keys() == ['sens@1', 'sens@2'] and metric.mean_key == 'mean_1-2'


def test_empty_subsets_warn_once_together():
    with pytest.warns(UserWarning) as record:
        run_evaluator(FROCMetric(compute_map=False), scene())
    messages = [str(w.message) for w in record if 'without lesions' in str(w.message)]
    assert messages == ['FROCMetric: 6 subset(s) without lesions, their sensitivities are n/a: '
                        'type_bone, type_abdomen, type_mediastinum, type_kidney, '
                        'type_soft_tissue, type_pelvis']


def test_headline_metrics_by_default():
    metrics = run_evaluator(FROCMetric(compute_map=False), scene())
    assert set(metrics) == {f'froc/{k}' for k in (
        'sens@0.5', 'sens@1', 'sens@2', 'sens@4', 'sens@8', 'sens@16', 'mean_0.5-4')}


def test_overall_sensitivities_and_map():
    metrics = run_evaluator(FROCMetric(), scene())
    for key, value in expected_overall().items():
        assert metrics[key] == pytest.approx(value), key
    # COCO AP: TP TP FP FP FP TP over 4 lesions -> precision 1 up to recall .5 (51 points),
    # 0.5 at recall .75 (25 points), 0 above
    assert metrics['froc/mAP@0.5'] == pytest.approx((51 + 25 * 0.5) / 101)


@pytest.fixture()
def report(monkeypatch):
    """The text the metric logs (its table and notes)."""
    from mp3d_mmdet.evaluation.metrics import froc_metric
    lines = []
    monkeypatch.setattr(froc_metric, 'print_log', lambda msg, **kwargs: lines.append(msg))
    return lines


def test_mp3d_protocol_reads_the_curve_as_the_official_code(report):
    # curve (.75, .5) (.75, .75) at its end: 0.5 FP is read inside the curve (first point
    # with 2 FPs: .5); the rates past .75 FP fall on a zero-length last segment, so scipy's
    # interp1d gives +inf there: reported n/a (NaN), with a warning
    with pytest.warns(UserWarning, match=r"curve ends at 0.75 FPs per image, so the rates 1, 2, "
                      r'4, 8, 16 lie past it: they are extrapolated as scipy interp1d does'):
        metrics = run_evaluator(FROCMetric(protocol='mp3d', breakdowns=False), scene())
    assert metrics['froc/sens@0.5'] == pytest.approx(0.5)
    assert all(math.isnan(metrics[f'froc/sens@{f}']) for f in (1, 2, 4, 8, 16))
    assert math.isnan(metrics['froc/mean_0.5-4'])
    # identical boxes: the same AP with or without the +1
    assert metrics['froc/mAP@0.5'] == pytest.approx((51 + 25 * 0.5) / 101)
    assert "protocol 'mp3d': official MP3D evaluation" in '\n'.join(report)
    assert 'IoU >= 0.5 (continuous coordinates)' in '\n'.join(report)


def test_default_protocol_is_named_in_the_report(report):
    run_evaluator(FROCMetric(breakdowns=False, compute_map=False), scene())
    text = '\n'.join(report)
    assert "protocol 'deeplesion': DeepLesion protocol of 3DCE / MULAN / AlignShift" in text
    assert 'IoU >= 0.5 (+1 pixel coordinates)' in text


def test_lesion_breakdowns_count_other_lesions_detections_as_fp():
    metrics = run_evaluator(FROCMetric(breakdown_metrics=True, compute_map=False), scene())
    # lung (L2 only): A, C are FPs (other lesions), then 3 FAR FPs, then B hits:
    # FP/image .25 .5 .75 1 1.25 1.25, sensitivity 0 0 0 0 0 1
    lung = [metrics[f'froc/type_lung/sens@{f}'] for f in ('0.5', '1', '2', '4', '8', '16')]
    assert lung == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert metrics['froc/type_lung/mean_0.5-4'] == pytest.approx(0.5)
    # liver (L1, L3; L4's type is unknown, the ignore_flag lesion is dropped): A, C hit first
    assert metrics['froc/type_liver/sens@0.5'] == 1.0
    assert math.isnan(metrics['froc/type_bone/sens@4'])  # no bone lesion
    # sizes: L1 5 mm, L2 20 mm + L4 15 mm, L3 40 mm
    assert metrics['froc/size_lt10mm/sens@0.5'] == 1.0
    assert [metrics[f'froc/size_10-30mm/sens@{f}'] for f in ('0.5', '1', '2')] == [0, 0, 0.5]
    assert metrics['froc/size_gt30mm/sens@0.5'] == 1.0


def test_lesion_breakdowns_with_ignored_out_of_subset_detections():
    metrics = run_evaluator(
            FROCMetric(breakdown_metrics=True, compute_map=False,
                       out_of_subset_detections='ignore'), scene())
    # lung: A and C now neither hit nor FP -> FP/image 0 0 .25 .5 .75 .75, hit at the end
    lung = [metrics[f'froc/type_lung/sens@{f}'] for f in ('0.5', '1', '2', '4')]
    assert lung == [0.0, 1.0, 1.0, 1.0]
    assert metrics['froc/type_lung/mean_0.5-4'] == pytest.approx(0.75)
    # the overall numbers do not depend on the option
    for key, value in expected_overall().items():
        assert metrics[key] == pytest.approx(value), key


def test_slice_interval_breakdown_filters_lesions_and_keeps_all_detections():
    metrics = run_evaluator(FROCMetric(breakdown_metrics=True, compute_map=False), scene())
    # <= 2 mm: lesions L1, L2 (image 0); all 4 images and detections stay:
    # A hit, C (L3, outside) FP, 3 FAR FPs, B hit -> FP/image 0 .25 .5 .75 1 1,
    # sensitivity .5 .5 .5 .5 .5 1
    assert [metrics[f'froc/interval_le2mm/sens@{f}'] for f in ('0.5', '1', '2')] == [0.5, 1, 1]
    assert metrics['froc/interval_le2mm/mean_0.5-4'] == pytest.approx(0.875)
    # > 2 mm: lesions L3 (image 1), L4 (image 2): A FP, C hit, 3 FAR FPs, B FP ->
    # FP/image .25 .25 .5 .75 1 1.25, sensitivity 0 .5 .5 .5 .5 .5; L4 is never found
    assert [metrics[f'froc/interval_gt2mm/sens@{f}'] for f in ('0.5', '1', '16')] == [.5, .5, .5]
    # with detections on other lesions ignored, B no longer counts: same values here, but
    # A is no FP either, so C is reached at 0 FPs/image
    ignored = run_evaluator(FROCMetric(breakdown_metrics=True, compute_map=False,
                                       out_of_subset_detections='ignore'),
                            scene())
    assert ignored['froc/interval_gt2mm/sens@0.5'] == 0.5


def test_all_keys_present_and_finite_where_defined():
    metrics = run_evaluator(FROCMetric(breakdown_metrics=True), scene())
    subsets = ['type_bone', 'type_abdomen', 'type_mediastinum', 'type_liver', 'type_lung',
               'type_kidney', 'type_soft_tissue', 'type_pelvis', 'size_lt10mm', 'size_10-30mm',
               'size_gt30mm', 'interval_le2mm', 'interval_gt2mm']
    fp_keys = ['sens@0.5', 'sens@1', 'sens@2', 'sens@4', 'sens@8', 'sens@16', 'mean_0.5-4']
    expected = {f'froc/{k}' for k in fp_keys} | {'froc/mAP@0.5'}
    expected |= {f'froc/{s}/{k}' for s in subsets for k in fp_keys}
    assert set(metrics) == expected
    empty = {'type_bone', 'type_abdomen', 'type_mediastinum', 'type_kidney',
             'type_soft_tissue', 'type_pelvis'}
    for key, value in metrics.items():
        assert math.isnan(value) == (key.split('/')[1] in empty), key


def test_without_breakdowns_needs_no_metadata():
    sample = data_sample(7, 1.0, [dict(bbox=A, ignore_flag=0)], [A + [0.3]])
    del sample.slice_interval
    metrics = run_evaluator(FROCMetric(breakdowns=False, compute_map=False), [sample])
    assert set(metrics) == {f'froc/sens@{f}' for f in ('0.5', '1', '2', '4', '8', '16')} | {
        'froc/mean_0.5-4'}
    assert metrics['froc/sens@0.5'] == 1.0


def test_records_are_plain_numpy_and_batches_split_like_ranks_agree():
    """What mmengine gathers across ranks: picklable numpy records, order-independent result."""
    whole = FROCMetric(compute_map=True)
    whole.process(None, [s.to_dict() for s in scene()])
    for record in whole.results:
        for value in record.values():
            assert not isinstance(value, torch.Tensor)
    gathered = pickle.loads(pickle.dumps(whole.results))
    # two "ranks" processing interleaved halves, as DefaultSampler shards the dataset
    rank0, rank1 = FROCMetric(), FROCMetric()
    rank0.process(None, [s.to_dict() for s in scene()[0::2]])
    rank1.process(None, [s.to_dict() for s in scene()[1::2]])
    a = whole.compute_metrics(gathered)
    b = FROCMetric().compute_metrics(rank0.results + rank1.results)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], nan_ok=True), key


def test_plot_and_records_json_written(tmp_path):
    metric = FROCMetric(plot_froc=True, out_dir=str(tmp_path / 'plots'),
                        outfile_prefix=str(tmp_path / 'out' / 'test'))
    run_evaluator(metric, scene())
    png = (tmp_path / 'plots' / 'froc_curve.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    path = tmp_path / 'out' / 'test.froc_records.json'
    assert json.loads(path.read_text())['format'] == 'mp3d_mmdet.froc_records'
    records = load_records_json(str(path))
    assert [r['img_id'] for r in records] == [0, 1, 2, 3]
    np.testing.assert_array_equal(records[0]['pred_bboxes'], [A, FAR, B])
    np.testing.assert_allclose(records[0]['pred_scores'], [0.9, 0.6, 0.4])
    np.testing.assert_array_equal(records[2]['gt_bboxes'], [D])  # ignore_flag=1 left out
    assert records[2]['gt_lesion_types'].tolist() == [-1]
    assert records[1]['slice_interval'] == 5.0


def packed_by_mmdet(sample: DetDataSample, box_type: bool) -> DetDataSample:
    """``sample`` as mmdet's default PackDetInputs packs it: the ground truth in
    ``gt_instances`` / ``ignored_instances`` (``HorizontalBoxes`` or tensors, as the data
    preprocessor leaves them), no ``instances`` or ``slice_interval`` in the metainfo."""
    instances = sample.instances
    packed = DetDataSample(metainfo=dict(img_id=sample.img_id, img_path=sample.img_path,
                                         ori_shape=sample.ori_shape))
    packed.pred_instances = sample.pred_instances
    for field, flag in (('gt_instances', 0), ('ignored_instances', 1)):
        boxes = torch.tensor([i['bbox'] for i in instances if i['ignore_flag'] == flag],
                             dtype=torch.float32).reshape(-1, 4)
        setattr(packed, field, InstanceData(
            bboxes=HorizontalBoxes(boxes) if box_type else boxes,
            labels=torch.zeros(len(boxes), dtype=torch.long)))
    return packed


@pytest.mark.parametrize('box_type', [True, False])
def test_ground_truth_from_gt_instances_with_mmdets_default_packing(box_type):
    samples = [packed_by_mmdet(s, box_type) for s in scene()]
    with pytest.warns(UserWarning) as record:
        metrics = run_evaluator(FROCMetric(breakdown_metrics=True), samples)
    for key, value in expected_overall().items():  # the same lesions as from `instances`
        assert metrics[key] == pytest.approx(value), key
    assert metrics['froc/mAP@0.5'] == pytest.approx(
        run_evaluator(FROCMetric(), scene())['froc/mAP@0.5'])
    # no lesion type, size or slice interval: every subset is n/a, said once for all images
    assert all(math.isnan(v) for k, v in metrics.items() if k.count('/') == 2)
    messages = [str(w.message) for w in record if 'subset' in str(w.message)]
    assert messages == [
        'FROCMetric: 13 subset(s) without lesions, their sensitivities are n/a: type_bone, '
        'type_abdomen, type_mediastinum, type_liver, type_lung, type_kidney, '
        'type_soft_tissue, type_pelvis, size_lt10mm, size_10-30mm, size_gt30mm, '
        "interval_le2mm, interval_gt2mm; no lesion has a type or size (they come with "
        "'instances' in the metainfo: add it to PackDetInputs' meta_keys); 4 of 4 images "
        "have no slice interval, their lesions are in no interval subset (add "
        "'slice_interval' to PackDetInputs' meta_keys)"]


def test_instances_take_precedence_over_gt_instances():
    sample = data_sample(0, 1.0, [lesion(A, 4, 5.0)], [A + [0.9]])
    sample.gt_instances = InstanceData(bboxes=torch.tensor([B], dtype=torch.float32))
    metric = FROCMetric()
    metric.process(None, [sample.to_dict()])
    np.testing.assert_array_equal(metric.results[0]['gt_bboxes'], [A])
    assert metric.results[0]['gt_lesion_types'].tolist() == [4]


def test_unknown_lesion_metadata_puts_a_lesion_in_no_subset():
    """Lesions without type / size (another dataset's instances) or images without a slice
    interval: the other subsets are computed, and one warning names what was missing."""
    samples = scene()
    del samples[1].slice_interval  # image 1: lesion C (liver, 40 mm) has no interval
    samples[2].instances[0].pop('lesion_type')  # lesion D had no type already (-1)
    with pytest.warns(UserWarning, match=r'1 of 4 images have no slice interval, their lesions '
                      r'are in no interval subset') as record:
        metrics = run_evaluator(FROCMetric(breakdown_metrics=True, compute_map=False), samples)
    assert len([w for w in record if 'subset' in str(w.message)]) == 1
    # > 2 mm now holds L4 only, which is never found
    assert metrics['froc/interval_gt2mm/sens@16'] == 0.0
    assert metrics['froc/type_liver/sens@16'] == 1.0  # L1 and L3 still counted by type
    assert metrics['froc/mean_0.5-4'] == pytest.approx(expected_overall()['froc/mean_0.5-4'])


def test_a_sample_without_any_ground_truth_is_named():
    sample = data_sample(6, 1.0, [lesion(A, 4, 5.0)], [A + [0.3]]).to_dict()
    del sample['instances']  # and no gt_instances: nothing loaded the annotations
    with pytest.raises(KeyError, match=r"img_id=6 has no ground truth: neither 'instances' in "
                       r"its metainfo \(add it to PackDetInputs' meta_keys\) nor "
                       r'gt_instances.bboxes \(load them with LoadAnnotations after the resize'):
        FROCMetric().process(None, [sample])


def test_no_ground_truth_at_all():
    metric = FROCMetric(breakdowns=False)
    metric.process(None, [data_sample(0, 1.0, [], [A + [0.3]]).to_dict()])
    with pytest.raises(ValueError, match='none of the 1 evaluated images has a ground-truth'):
        metric.compute_metrics(metric.results)


@pytest.mark.parametrize('kwargs, message', [
    (dict(fps=[]), 'fps must be a non-empty'),
    (dict(fps=[1, -2]), 'fps must be a non-empty sequence of positive'),
    (dict(iou_thr=1.5), r'iou_thr must be in \(0, 1\]'),
    (dict(mean_fp_range=(20, 30)), 'no fps value lies in mean_fp_range'),
    (dict(out_of_subset_detections='drop'), 'out_of_subset_detections must be one of'),
    (dict(protocol='lens'), "FROCMetric: unknown FROC protocol 'lens'; choose one of"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FROCMetric(**kwargs)


def test_process_accepts_data_sample_objects_too():
    metric = FROCMetric(compute_map=False)
    metric.process(None, scene())  # DetDataSample objects, not dicts
    metrics = metric.compute_metrics(metric.results)
    assert metrics['sens@0.5'] == 0.5  # compute_metrics: keys without the prefix

"""FROCMetric in a real 2-process (gloo, CPU) evaluation equals the single-process result.

Two ranks (one run each for collect_device 'cpu' and 'gpu') process the shards mmengine's
``DefaultSampler`` gives them (5 images: rank 0 gets 0, 2, 4, rank 1 gets 1, 3 and the
padding copy of 0); ``BaseMetric.evaluate`` gathers the records ('cpu': through a shared
folder, 'gpu': through collective communication) and drops the padding.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from mp3d_mmdet.evaluation import FROCMetric

WORKER = textwrap.dedent('''
    import json, os, sys, warnings
    import torch
    import torch.distributed as dist
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mp3d_mmdet.evaluation import FROCMetric

    warnings.simplefilter('ignore')
    A, B, C, FAR = [0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49], [200, 200, 209, 209]

    def sample(img_id, interval, lesions, detections):
        s = DetDataSample()
        s.set_metainfo(dict(img_id=img_id, instances=[
            dict(bbox=b, ignore_flag=0, lesion_type=t, long_diameter_mm=d)
            for b, t, d in lesions], slice_interval=interval))
        pred = InstanceData()
        pred.bboxes = torch.tensor([d[:4] for d in detections], dtype=torch.float32).reshape(-1, 4)
        pred.scores = torch.tensor([d[4] for d in detections], dtype=torch.float32)
        s.pred_instances = pred
        return s.to_dict()

    def scene():
        return [
            sample(0, 1.0, [(A, 4, 5.0), (B, 5, 20.0)], [A + [0.9], FAR + [0.6], B + [0.4]]),
            sample(1, 5.0, [(C, 4, 40.0)], [C + [0.8], FAR + [0.7]]),
            sample(2, 5.0, [(B, 6, 15.0)], []),
            sample(3, 1.0, [], [FAR + [0.5]]),
            sample(4, 2.0, [(A, 7, 25.0)], [FAR + [0.95], A + [0.3]]),
        ]

    if __name__ == '__main__':
        out = sys.argv[1]
        dist.init_process_group('gloo')
        rank = dist.get_rank()
        shard = [[0, 2, 4], [1, 3, 0]][rank]  # DefaultSampler, round_up padding
        results = {}
        for collect_device in ('cpu', 'gpu'):
            metric = FROCMetric(collect_device=collect_device, breakdown_metrics=True)
            data = scene()
            metric.process(None, [data[i] for i in shard[:2]])
            metric.process(None, [data[i] for i in shard[2:]])
            results[collect_device] = metric.evaluate(5)
        dist.destroy_process_group()
        if rank == 0:
            with open(out, 'w') as f:
                json.dump(results, f)
''')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _run_two_ranks(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    out = tmp_path / 'metrics.json'
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()),
               WORLD_SIZE='2', CUDA_VISIBLE_DEVICES='')
    procs = [
        subprocess.Popen([sys.executable, str(script), str(out)],
                         env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         encoding='utf-8', errors='replace')
        for rank in (0, 1)
    ]
    logs = [proc.communicate(timeout=300)[0] for proc in procs]
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
    return json.loads(out.read_text())


@pytest.mark.filterwarnings('ignore:FROCMetric. .* subset.s. without lesions')
def test_two_process_evaluation_equals_single_process(tmp_path):
    distributed = _run_two_ranks(tmp_path)
    worker = {}
    exec(WORKER, worker)  # the same scene, evaluated here in one process
    metric = FROCMetric(breakdown_metrics=True)
    metric.process(None, worker['scene']())
    single = metric.evaluate(5)
    assert len(single) == 1 + 14 * 7  # mAP + 7 values (6 FP rates, mean) x (all + 13 subsets)
    for collect_device in ('cpu', 'gpu'):
        assert set(distributed[collect_device]) == set(single)
        for key, value in single.items():
            assert distributed[collect_device][key] == pytest.approx(value, nan_ok=True), (
                collect_device, key)
    # ranked: FAR(.95) FP, A hit, C hit, FAR, FAR, FAR, B hit, A(img 4) hit, 5 lesions:
    # FP/image .2 .2 .2 .4 .6 .8 .8 .8 over 5 images -- 6 if the padding copy had been kept
    assert single['froc/sens@0.5'] == pytest.approx(0.4)
    assert single['froc/sens@1'] == pytest.approx(0.8)

"""mmcv's nms / RoIAlign routed to torchvision's kernels: same results as mmcv, narrow scope.

torchvision cannot be installed beside this project's CPU build of torch, so the CPU tests
run against a stand-in ``torchvision.ops`` that records its calls and computes them with
mmcv's own CPU kernels: they check what is passed and what is done around the kernels.
Where torchvision and CUDA exist (``tools/benchmark/gpu_check.sh``), the last test compares
torchvision's CUDA kernels with mmcv's CPU ops.
"""
import sys
import types

import pytest
import torch
from mmcv.ops import RoIAlign, batched_nms, nms
from mmcv.ops.roi_align import roi_align
from mmcv.utils import ext_loader

from mp3d_mmdet.utils import torchvision_ops
from mp3d_mmdet.utils.torchvision_ops import (route_cuda_ops_if_needed,
                                              route_mmcv_ops_to_torchvision, torchvision_nms,
                                              torchvision_roi_align, unroute_mmcv_ops)

CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _restore_mmcv():
    yield
    unroute_mmcv_ops()


@pytest.fixture
def torchvision_calls(monkeypatch):
    """A stand-in ``torchvision.ops`` computing with mmcv's CPU kernels; yields its call log."""
    calls = []
    ext = ext_loader.load_ext('_ext', ['nms'])

    def fake_nms(boxes, scores, iou_threshold):
        assert boxes.dtype == scores.dtype and isinstance(iou_threshold, float)
        calls.append(('nms', len(boxes), iou_threshold))
        return ext.nms(boxes, scores, iou_threshold=iou_threshold, offset=0)

    def fake_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned):
        calls.append(('roi_align', tuple(output_size), spatial_scale, sampling_ratio, aligned))
        return roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, 'avg',
                         aligned)

    module = types.ModuleType('torchvision')
    module.ops = types.SimpleNamespace(nms=fake_nms, roi_align=fake_roi_align)
    monkeypatch.setitem(sys.modules, 'torchvision', module)
    yield calls


def random_boxes(n: int, seed: int = 0):
    """(n, 4) boxes on a 64-px grid, overlapping often, and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 48, (n, 2), generator=g).float()
    wh = torch.randint(4, 24, (n, 2), generator=g).float()
    scores = torch.randperm(n, generator=g).float() / n + 0.01
    return torch.cat([xy, xy + wh], dim=1), scores


@pytest.mark.parametrize('score_thr,max_num', [(0.0, -1), (0.3, -1), (0.0, 5), (0.5, 3)])
def test_nms_keeps_what_mmcv_keeps(torchvision_calls, score_thr, max_num):
    boxes, scores = random_boxes(60)
    _, expected = nms(boxes, scores, 0.4, score_threshold=score_thr, max_num=max_num)
    kept = torchvision_nms(boxes, scores.double(), 0.4, 0, score_thr, max_num)
    assert 0 < len(expected) < 60
    assert kept.tolist() == expected.tolist()
    # the score threshold is applied before the kernel, max_num after it
    assert torchvision_calls == [('nms', int((scores > score_thr).sum()), 0.4)]


def test_nms_refuses_legacy_offset(torchvision_calls):
    boxes, scores = random_boxes(5)
    with pytest.raises(ValueError, match='offset=1'):
        torchvision_nms(boxes, scores, 0.5, 1, 0.0, -1)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_passes_mmcv_settings(torchvision_calls, aligned, sampling_ratio):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 3, 16, 16, generator=g)
    rois = torch.tensor([[0, 1.5, 2.0, 30.0, 25.0], [1, 0.0, 0.0, 8.0, 8.0],
                         [1, 10.2, 4.7, 31.0, 31.5]])
    module = RoIAlign((7, 7), spatial_scale=0.5, sampling_ratio=sampling_ratio,
                      aligned=aligned)
    expected = module(feats, rois)
    got = torchvision_roi_align(module, feats, rois.double())
    assert got.shape == (3, 3, 7, 7)
    torch.testing.assert_close(got, expected)
    assert torchvision_calls == [('roi_align', (7, 7), 0.5, sampling_ratio, aligned)]


def test_roi_align_refuses_max_pooling(torchvision_calls):
    module = RoIAlign((2, 2), 1.0, pool_mode='max')
    with pytest.raises(ValueError, match="pool_mode='max'"):
        torchvision_roi_align(module, torch.zeros(1, 1, 4, 4), torch.zeros(1, 5))


def test_routing_sends_only_the_given_devices_to_torchvision(torchvision_calls):
    calls = torchvision_calls
    boxes, scores = random_boxes(40, seed=3)
    idxs = (torch.arange(40) % 3).float()
    nms_cfg = dict(type='nms', iou_threshold=0.5)
    expected_dets, expected_keep = batched_nms(boxes, scores, idxs, nms_cfg)
    module = RoIAlign((2, 2), 1.0, 0)
    feats, rois = torch.arange(16.).view(1, 1, 4, 4), torch.tensor([[0., 0., 0., 3., 3.]])
    expected_roi = module(feats, rois)
    assert calls == []

    assert route_mmcv_ops_to_torchvision(('cpu', )) is True
    dets, keep = batched_nms(boxes, scores, idxs, nms_cfg)
    assert [c[0] for c in calls] == ['nms']
    assert keep.tolist() == expected_keep.tolist()
    torch.testing.assert_close(dets, expected_dets)
    torch.testing.assert_close(module(feats, rois), expected_roi)
    assert [c[0] for c in calls] == ['nms', 'roi_align']
    assert route_mmcv_ops_to_torchvision(('cpu', )) is False  # already installed
    module.use_torchvision = True  # mmcv's own torchvision path is left to mmcv
    with pytest.raises(ImportError):  # mmcv imports torchvision.ops, which the stand-in lacks
        module(feats, rois)
    module.use_torchvision = False
    assert [c[0] for c in calls] == ['nms', 'roi_align']

    route_mmcv_ops_to_torchvision(('cuda', ))  # CPU tensors back to mmcv
    batched_nms(boxes, scores, idxs, nms_cfg)
    module(feats, rois)
    unroute_mmcv_ops()
    route_mmcv_ops_to_torchvision(('cpu', ))
    unroute_mmcv_ops()
    batched_nms(boxes, scores, idxs, nms_cfg)
    module(feats, rois)
    assert [c[0] for c in calls] == ['nms', 'roi_align']


def test_route_if_needed_acts_only_for_cuda_without_mmcv_cuda_ops(monkeypatch,
                                                                  torchvision_calls):
    monkeypatch.setattr(torchvision_ops, 'mmcv_has_cuda_ops', lambda: False)
    assert route_cuda_ops_if_needed('cpu') is False
    assert not torchvision_ops._ORIGINALS
    assert route_cuda_ops_if_needed('cuda:0') is True
    assert torchvision_ops._ORIGINALS
    unroute_mmcv_ops()
    monkeypatch.setattr(torchvision_ops, 'mmcv_has_cuda_ops', lambda: True)
    assert route_cuda_ops_if_needed('cuda') is False
    assert not torchvision_ops._ORIGINALS


def test_route_if_needed_refuses_early_without_torchvision(monkeypatch):
    monkeypatch.setattr(torchvision_ops, 'mmcv_has_cuda_ops', lambda: False)
    monkeypatch.setitem(sys.modules, 'torchvision', None)  # import fails
    with pytest.raises(RuntimeError, match=r'^mmcv was built without CUDA ops and torchvision '
                       r'cannot be imported .*: install torchvision matching your torch, or '
                       r'build mmcv with CUDA \(MP3D_MMCV_CUDA=1 bash tools/setup_env.sh\)$'):
        route_cuda_ops_if_needed('cuda')
    assert not torchvision_ops._ORIGINALS
    assert route_cuda_ops_if_needed('cpu') is False  # not needed: no torchvision asked for


def test_this_cpu_build_of_mmcv_has_no_cuda_ops():
    """The set-up builds mmcv's ops for the CPU unless MP3D_MMCV_CUDA=1 (tools/setup_env.sh)."""
    if CUDA:
        pytest.skip('a CUDA machine may have a CUDA build of mmcv')
    assert torchvision_ops.mmcv_has_cuda_ops() is False


@pytest.mark.skipif(not CUDA, reason='needs CUDA (tools/benchmark/gpu_check.sh runs it)')
def test_cuda_results_match_mmcv_on_cpu():
    routed = route_cuda_ops_if_needed('cuda')
    boxes, scores = random_boxes(200, seed=5)
    idxs = (torch.arange(200) % 4).float()
    nms_cfg = dict(type='nms', iou_threshold=0.5)
    _, keep_cpu = batched_nms(boxes, scores, idxs, nms_cfg)
    _, keep_cuda = batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), nms_cfg)
    assert keep_cuda.cpu().tolist() == keep_cpu.tolist()
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 8, 32, 32, generator=g)
    rois = torch.tensor([[0, 1.5, 2.0, 60.0, 50.0], [1, 10.2, 4.7, 31.0, 31.5]])
    module = RoIAlign((7, 7), 0.5, 0, aligned=True)
    expected = module(feats, rois)
    feats_cuda = feats.cuda().requires_grad_()
    with torch.autocast('cuda', dtype=torch.float16):
        got = module(feats_cuda.half(), rois.cuda())
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float().cpu(), expected, atol=2e-2, rtol=1e-2)
    got.float().sum().backward()
    assert feats_cuda.grad is not None and feats_cuda.grad.abs().sum() > 0
    print(f'mmcv CUDA ops: {not routed}; torchvision routing: {routed}')

"""The network's precision: what ``auto`` picks per device and CPU, fp16 refused on the CPU,
bf16 autocast confined to the feature extractor (heads and boxes in float32), and several
slices per forward pass giving the detections of one slice per pass."""
import numpy as np
import pytest
import torch

from helpers.volume_fixtures import tiny_config_text
from mp3d_mmdet.volume import (CTVolume, InferenceSetupError, VolumeGeometry, VolumeLesionDetector,
                               cpu_bf16_flags, precision_context, resolve_precision)
from mp3d_mmdet.volume.inference import precision as precision_module


@pytest.fixture(scope='module')
def tiny_cfg_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'tiny3.py'
    path.write_text(tiny_config_text(num_slices=3, slice_interval=2.5, scale=64))
    return str(path)


def _volume(seed=0, depth=6):
    hu = np.random.default_rng(seed).normal(0, 300, (depth, 40, 36)).astype(np.int16)
    geometry = VolumeGeometry((36, 40, depth), (1.0, 1.0, 2.5), (0.0, 0.0, 0.0),
                              (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), 'LPS')
    return CTVolume(hu=hu, geometry=geometry, original_geometry=geometry,
                    source_path='memory', source_format='other', reoriented=False,
                    intensity_stats={})


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 avx512_bf16\n\n'
                    'processor\t: 1\nflags\t\t: fpu sse avx2 avx512f amx_bf16 avx512_bf16\n')
    assert cpu_bf16_flags(str(info)) == ('avx512_bf16', 'amx_bf16')
    info.write_text('flags\t\t: fpu sse avx2 avx512f avx512_vnni\n')
    assert cpu_bf16_flags.__wrapped__(str(info)) == ()
    assert cpu_bf16_flags.__wrapped__(str(tmp_path / 'missing')) == ()


def test_auto_picks_per_device_and_fp16_needs_cuda(monkeypatch):
    monkeypatch.setattr(precision_module, 'cpu_bf16_flags', lambda: ('avx512_bf16', ))
    assert resolve_precision('auto', 'cpu') == 'bf16'
    monkeypatch.setattr(precision_module, 'cpu_bf16_flags', lambda: ())
    assert resolve_precision('auto', 'cpu') == 'fp32'
    assert resolve_precision('auto', 'cuda:1') == 'fp16'
    assert resolve_precision('bf16', 'cpu') == 'bf16'
    assert resolve_precision('fp32', 'cuda') == 'fp32'
    with pytest.raises(InferenceSetupError, match='--precision fp16 needs a CUDA device'):
        resolve_precision('fp16', 'cpu')
    with pytest.raises(InferenceSetupError, match="precision must be one of auto, fp32, bf16, "
                       "fp16, got 'half'"):
        resolve_precision('half', 'cpu')


def test_bf16_autocasts_the_features_only_and_is_restored(tiny_cfg_path):
    torch.manual_seed(0)
    detector = VolumeLesionDetector(tiny_cfg_path, device='cpu', precision='bf16')
    assert detector.describe()['precision'] == 'bf16'
    model = detector.model
    seen = {}
    backbone_forward = model.backbone.forward

    def spy(*args, **kwargs):
        seen['autocast'] = torch.is_autocast_cpu_enabled() if hasattr(
            torch, 'is_autocast_cpu_enabled') else torch.is_autocast_enabled('cpu')
        return backbone_forward(*args, **kwargs)
    model.backbone.forward = spy
    inputs = torch.rand(2, 3, 64, 64)
    with precision_context(model, 'bf16', 'cpu'):
        assert 'extract_feat' in vars(model)
        features = model.extract_feat(inputs)
    assert seen['autocast'] is True
    assert 'extract_feat' not in vars(model)  # the class's method again
    assert all(f.dtype == torch.float32 for f in features)
    with precision_context(model, 'fp32', 'cpu'):
        assert 'extract_feat' not in vars(model)
        model.extract_feat(inputs)
    assert seen['autocast'] is False

    result = detector.detect(_volume(), batch_size=2, score_thr=0.0, progress=False)
    assert result.num_detections > 0
    assert all(b.dtype == np.float32 for b in result.boxes)
    assert all(s.dtype == np.float32 for s in result.scores)


def test_batch_k_gives_the_detections_of_batch_1(tiny_cfg_path):
    torch.manual_seed(0)
    detector = VolumeLesionDetector(tiny_cfg_path, device='cpu', precision='fp32')
    volume = _volume(seed=1, depth=7)
    one = detector.detect(volume, batch_size=1, score_thr=0.05, progress=False)
    four = detector.detect(volume, batch_size=4, score_thr=0.05, progress=False)
    assert one.num_detections > 0
    for z in range(volume.num_slices):
        np.testing.assert_allclose(four.boxes[z], one.boxes[z], atol=1e-3)
        np.testing.assert_allclose(four.scores[z], one.scores[z], atol=1e-5)

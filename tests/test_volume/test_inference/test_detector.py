"""The detector's input over a volume: settings from the config, z interpolation at a spacing
different from the model's, in-plane resize rules, box mapping, setup errors."""
import os.path as osp

import numpy as np
import pytest
import torch

from helpers.volume_fixtures import REPO, tiny_config_text
from mp3d_mmdet.datasets.slice_sampling import sample_slices_from_volume
from mp3d_mmdet.utils.config import load_config
from mp3d_mmdet.volume import (CTVolume, InferenceSetupError, VolumeGeometry, VolumeLesionDetector,
                               detect_lesions_in_volume, load_inference_config,
                               plan_in_plane_resize, slice_input_settings)


def _volume(hu, spacing):
    depth, height, width = hu.shape
    geometry = VolumeGeometry((width, height, depth), tuple(spacing), (0.0, 0.0, 0.0),
                              (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), 'LPS')
    return CTVolume(hu=hu, geometry=geometry, original_geometry=geometry,
                    source_path='memory', source_format='other', reoriented=False,
                    intensity_stats={})


def _scaled(hu):
    """The paper's window: clip to [-1024, 1050] HU, map linearly to [0, 255]."""
    return (np.clip(np.asarray(hu, np.float64), -1024, 1050) + 1024) * 255.0 / 2074.0


@pytest.fixture(scope='module')
def tiny_cfg_path(tmp_path_factory):
    """5 slices every 2.5 mm, test Resize to 64 px (keep ratio)."""
    path = tmp_path_factory.mktemp('cfg') / 'tiny5.py'
    path.write_text(tiny_config_text(num_slices=5, slice_interval=2.5, scale=64))
    return str(path)


@pytest.fixture(scope='module')
def tiny_detector(tiny_cfg_path):
    torch.manual_seed(0)
    return VolumeLesionDetector(tiny_cfg_path, checkpoint=None, device='cpu')


def test_settings_come_from_the_test_pipeline(tiny_cfg_path):
    paper = slice_input_settings(load_inference_config(
        osp.join(REPO, 'configs', 'mp3d_fpn_deeplesion_2x.py')))
    assert (paper.num_slices, paper.slice_interval) == (9, 2.5)
    assert paper.hu_window == (-1024.0, 1050.0) and paper.out_range == (0.0, 255.0)
    assert paper.resize == {'type': 'SliceWiseResize', 'scale': (512, 512), 'keep_ratio': True}
    demo = slice_input_settings(load_inference_config(
        osp.join(REPO, 'configs', 'mp3d_fpn_synthetic_demo.py')))
    assert demo.resize['scale'] == (160, 160) and demo.num_slices == 9
    assert demo.hu_window == (-175.0, 275.0)  # the demo's own window reaches volume inference
    tiny = slice_input_settings(load_inference_config(tiny_cfg_path))
    assert (tiny.num_slices, tiny.slice_interval, tiny.resize['scale']) == (5, 2.5, (64, 64))


@pytest.mark.parametrize('resize_type,found', [('Resize', True), ('mmdet.Resize', True),
                                               ('SliceWiseResize', True),
                                               ('FixShapeResize', False)])
def test_test_resize_may_be_mmdets_own(tiny_cfg_path, resize_type, found):
    cfg = load_inference_config(tiny_cfg_path)
    cfg.test_dataloader.dataset.pipeline[1]['type'] = resize_type
    resize = slice_input_settings(cfg).resize
    assert (resize == dict(type=resize_type, scale=(64, 64), keep_ratio=True)) if found \
        else resize is None


def test_in_plane_resize_rules():
    paper = {'type': 'Resize', 'scale': (512, 512), 'keep_ratio': True}
    # default, square pixels: the config's Resize unchanged (a 256 px slice goes to 512 px)
    cfg, size, rule = plan_in_plane_resize(paper, (512, 512), (0.7, 0.7))
    assert cfg == paper and size == (512, 512) and rule.startswith('config test Resize')
    assert plan_in_plane_resize(paper, (256, 256), (1.4, 1.4))[1] == (512, 512)
    assert plan_in_plane_resize(paper, (400, 600), (0.8, 0.8))[1] == (512, 341)
    # a target spacing replaces the Resize: 512 px at 0.7 mm -> 0.8 mm/px = 448 px
    cfg, size, rule = plan_in_plane_resize(dict(paper, interpolation='area'), (512, 512),
                                           (0.7, 0.7), target_spacing=0.8)
    assert cfg == {'type': 'Resize', 'interpolation': 'area', 'scale': (448, 448),
                   'keep_ratio': False}
    assert size == (448, 448) and rule.startswith('resampled in-plane to the target 0.8 mm/px')
    # non-square pixels, no target: square pixels at 0.7 mm (100 x 102.857 px), then the
    # keep-ratio rule into 512 x 512: factor 512 / 102.857 = 4.9778 -> 497.8 x 512
    cfg, size, rule = plan_in_plane_resize(paper, (80, 100), (0.7, 0.9))
    assert size == (498, 512) and cfg['scale'] == (498, 512) and cfg['keep_ratio'] is False
    assert rule.startswith('non-square pixels 0.7x0.9 mm')
    # no Resize in the test pipeline, square pixels: nothing to do
    assert plan_in_plane_resize(None, (64, 48), (1.0, 1.0))[:2] == (None, (48, 64))
    with pytest.raises(InferenceSetupError, match=r'in-plane resampling would make 5120x5120 px'):
        plan_in_plane_resize(paper, (512, 512), (1.0, 1.0), target_spacing=0.1)
    with pytest.raises(InferenceSetupError, match=r'pixel_spacing must be > 0 mm, got -1'):
        plan_in_plane_resize(paper, (512, 512), (1.0, 1.0), target_spacing=-1)


def _spy_on_network(detector, captured):
    original = detector.model.test_step

    def spy(data):
        captured.append(data)
        return original(data)

    detector.model.test_step = spy
    return original


def test_z_interpolation_resize_and_box_mapping(tiny_detector):
    # 20 slices 1.0 mm apart (the model wants 2.5 mm), each constant: HU = 10 * z - 100;
    # 32 x 32 px at 1.25 mm, resized to the config's 64 x 64.
    depth = 20
    hu = np.repeat((10.0 * np.arange(depth) - 100.0)[:, None, None], 32 * 32, 1)
    hu = hu.reshape(depth, 32, 32).astype(np.int16)
    volume = _volume(hu, (1.25, 1.25, 1.0))
    captured = []
    original = _spy_on_network(tiny_detector, captured)
    try:
        result = tiny_detector.detect(volume, batch_size=3, score_thr=0.0, progress=False)
    finally:
        tiny_detector.model.test_step = original
    assert [len(batch['inputs']) for batch in captured] == [3] * 6 + [2]
    inputs = [x for batch in captured for x in batch['inputs']]
    samples = [s for batch in captured for s in batch['data_samples']]
    assert all(tuple(x.shape) == (5, 64, 64) for x in inputs)
    # slice 10: positions 5, 7.5, 10, 12.5, 15 -> HU -50, -25, 0, 25, 50 (interpolated on
    # 7.5 and 12.5); slice 0: positions -5 and -2.5 fall back to slice 0 -> -100 HU
    expected = {10: [-50, -25, 0, 25, 50], 0: [-100, -100, -100, -75, -50],
                19: [40, 65, 90, 90, 90]}
    for z, hu_values in expected.items():
        channels = inputs[z].numpy().reshape(5, -1)
        assert channels.min(1) == pytest.approx(channels.max(1))  # constant slices stay so
        assert channels[:, 0] == pytest.approx(_scaled(hu_values), abs=1e-3)
        # the same function the training loader uses, then the config's SliceWiseResize
        shared = sample_slices_from_volume(hu, z, 5, 2.5, 1.0)
        assert channels[:, 0] == pytest.approx(shared[0, 0], abs=1e-4)
    for z, sample in enumerate(samples):
        assert sample.img_id == z
        assert sample.ori_shape == (32, 32) and sample.img_shape == (64, 64)
        assert tuple(sample.scale_factor) == (2.0, 2.0)
    # a random-init model still returns boxes: mapped back into the 32 x 32 slice grid
    assert result.num_detections > 0
    all_boxes = np.concatenate([b for b in result.boxes if len(b)])
    assert all_boxes.min() >= 0.0 and all_boxes.max() <= 32.0
    assert all(s.min() >= 0.0 for s in result.scores if len(s))
    assert result.model_input_size == (64, 64)
    assert result.effective_pixel_spacing == pytest.approx((0.625, 0.625))
    # reach = 2 x 2.5 mm = 5 slices: slices 0-4 and 15-19 replicate an edge slice
    assert result.edge_replicated_slices == 10
    assert result.slices_run == list(range(depth))
    assert set(result.timings) == {'assemble', 'pipeline', 'network', 'postprocess'}
    # a subset of slices, and a score threshold that keeps nothing
    subset = tiny_detector.detect(volume, slices=[2, 7], score_thr=1.0, progress=False)
    assert subset.slices_run == [2, 7] and subset.num_detections == 0
    with pytest.raises(ValueError, match=r'slice indices \[20\] outside the volume of 20'):
        tiny_detector.detect(volume, slices=[20], progress=False)


def test_volume_shorter_than_the_input_replicates_edges_and_says_so(tiny_detector):
    # 3 slices 2 mm apart (4 mm) against 5 inputs every 2.5 mm (10 mm): all slices replicate
    volume = _volume(np.zeros((3, 32, 32), np.int16), (1.0, 1.0, 2.0))
    result = detect_lesions_in_volume(volume, detector=tiny_detector, score_thr=0.99,
                                      progress=False)
    assert result.detections.edge_replicated_slices == 3
    assert result.warnings == [
        "memory: the volume spans 4 mm (3 slices at 2 mm), less than the model's 5-slice "
        "input (10 mm): every slice's input replicates the first/last slice"]
    assert result.model['score_thr'] == 0.99 and result.model['num_slices'] == 5
    assert set(result.timings) == {'assemble', 'pipeline', 'network', 'postprocess', 'link'}


def test_target_pixel_spacing_from_the_config(tmp_path):
    cfg = tmp_path / 'spacing.py'
    cfg.write_text(tiny_config_text(num_slices=3, scale=64,
                                    extra='volume_inference = dict(pixel_spacing=2.5)\n'))
    detector = VolumeLesionDetector(str(cfg), None, 'cpu')
    assert detector.pixel_spacing == 2.5
    assert VolumeLesionDetector(str(cfg), None, 'cpu', pixel_spacing=0.625).pixel_spacing == \
        0.625
    volume = _volume(np.zeros((4, 48, 40), np.int16), (1.25, 1.25, 5.0))
    captured = []
    _spy_on_network(detector, captured)
    result = detector.detect(volume, batch_size=4, score_thr=0.0, progress=False)
    sample = captured[0]['data_samples'][0]
    assert tuple(captured[0]['inputs'][0].shape) == (3, 24, 20)
    assert sample.ori_shape == (48, 40) and sample.img_shape == (24, 20)
    assert tuple(sample.scale_factor) == (0.5, 0.5)
    assert result.model_input_size == (20, 24)
    assert result.effective_pixel_spacing == pytest.approx((2.5, 2.5))
    assert result.resize_rule.startswith('resampled in-plane to the target 2.5 mm/px')
    assert result.edge_replicated_slices == 2  # 3 slices at 2.5 mm on a 5 mm grid: the ends


def test_setup_errors(tmp_path, tiny_cfg_path):
    with pytest.raises(InferenceSetupError, match=r'config file not found: .*nothere\.py'):
        VolumeLesionDetector(str(tmp_path / 'nothere.py'))
    with pytest.raises(InferenceSetupError, match=r'checkpoint file not found: .*none\.pth'):
        VolumeLesionDetector(tiny_cfg_path, str(tmp_path / 'none.pth'))
    wrong = tmp_path / 'wrong.pth'
    torch.save({'state_dict': {'backbone.stem.weight': torch.zeros(1)}}, str(wrong))
    with pytest.raises(InferenceSetupError, match=r"wrong\.pth: not a checkpoint of the model "
                       r"of .*tiny5\.py: 97 of the model's 97 weights missing \(e\.g\. "
                       r'backbone\.conv1\.weight\); 1 unexpected \(e\.g\. '
                       r'backbone\.stem\.weight\)'):
        VolumeLesionDetector(tiny_cfg_path, str(wrong))
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    weights = MODELS.build(load_config(tiny_cfg_path).model).state_dict()
    weights['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(4, 32)  # 3 classes, not 1
    torch.save({'state_dict': weights}, str(wrong))
    with pytest.raises(InferenceSetupError, match=r'tiny5\.py: 1 weight\(s\) of another shape '
                       r'\(size mismatch for roi_head\.bbox_head\.fc_cls\.weight: '):
        VolumeLesionDetector(tiny_cfg_path, str(wrong))
    if not torch.cuda.is_available():
        with pytest.raises(InferenceSetupError, match=r'--device cuda requested but CUDA is not '
                           r'available .*; use --device cpu'):
            VolumeLesionDetector(tiny_cfg_path, None, 'cuda')
    with pytest.raises(InferenceSetupError, match=r"device must be 'cpu', 'cuda' or 'cuda:N', "
                       r"got 'tpu'"):
        VolumeLesionDetector(tiny_cfg_path, None, 'tpu')
    no_loader = tmp_path / 'noloader.py'
    no_loader.write_text(f"_base_ = {tiny_cfg_path!r}\n"
                         "test_dataloader = dict(dataset=dict(pipeline=[dict(type='Resize', "
                         "scale=(64, 64))], _delete_=False))\n")
    with pytest.raises(InferenceSetupError, match=r"the first transform of the config's test "
                       r"pipeline must be LoadCTSlices .*got 'Resize'"):
        VolumeLesionDetector(str(no_loader))


def test_cuda_ops_routing_is_reported_or_refused(tiny_cfg_path, monkeypatch):
    """What ``route_cuda_ops_if_needed`` says for the detector's device reaches the user: a
    note when mmcv's CUDA ops run through torchvision, a one-line setup error when they
    cannot run at all."""
    from mp3d_mmdet.volume.inference import detector as module
    asked = []
    monkeypatch.setattr(module, 'route_cuda_ops_if_needed',
                        lambda device: asked.append(device) or True)
    detector = VolumeLesionDetector(tiny_cfg_path, None, 'cpu')
    assert asked == ['cpu']
    assert detector.warnings == ["mmcv has no CUDA ops: nms and RoIAlign run torchvision's "
                                 'CUDA kernels (mp3d_mmdet.utils.torchvision_ops)']

    def refuse(device):
        raise RuntimeError('mmcv was built without CUDA ops and torchvision cannot be imported')
    monkeypatch.setattr(module, 'route_cuda_ops_if_needed', refuse)
    with pytest.raises(InferenceSetupError, match='^mmcv was built without CUDA ops'):
        VolumeLesionDetector(tiny_cfg_path, None, 'cpu')

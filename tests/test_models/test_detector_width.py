"""reduced_width_detector: one definition of the layers that follow the width, used by the
demo config and the tests' tiny models; the narrowed detectors build and run."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from helpers.tiny_mp3d import tiny_mp3d_model
from mp3d_mmdet.models.detector_width import reduced_width_detector, stage_channels
from mp3d_mmdet.utils.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_stage_channels_follow_the_bottleneck_expansion():
    assert stage_channels(64) == [256, 512, 1024, 2048]
    assert stage_channels(8, 3) == [32, 64, 128]


@pytest.mark.parametrize('config', ['mp3d_fpn_deeplesion_2x.py', 'mr3d_fpn_deeplesion_2x.py'])
def test_a_narrowed_paper_detector_builds_and_runs(tmp_path, config):
    path = tmp_path / 'tiny.py'
    path.write_text(f"_base_ = {osp.join(REPO, 'configs', config)!r}\n"
                    + tiny_mp3d_model(num_slices=3))
    cfg = load_config(str(path))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert model.backbone.feat_dims == (32, 64, 128, 256)
    assert cfg.model.neck[0].in_channels == cfg.model.neck[1].in_channels == [32, 64, 128, 256]
    assert cfg.model.backbone.norm_cfg.num_groups == 4
    assert cfg.model.roi_head.bbox_head.fc_out_channels == 32
    with torch.no_grad():
        features = model.extract_feat(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 32, 16 // 2**i, 16 // 2**i)
                                                  for i in range(4)] + [(1, 32, 1, 1)]


def test_the_demo_config_is_narrowed_by_the_same_function():
    cfg = load_config(osp.join(REPO, 'configs', 'mp3d_fpn_synthetic_demo.py'))
    paper = load_config(osp.join(REPO, 'configs', 'mp3d_fpn_deeplesion_2x.py'))
    override = reduced_width_detector(paper.model, base_channels=16, stage_blocks=[1, 1, 1, 1],
                                      fpn_channels=64, fc_channels=256, norm_groups=8)
    assert [dict(n) for n in cfg.model.neck] == [dict(n) for n in override['neck']]
    assert cfg.model.backbone.base_channels == 16 and cfg.model.rpn_head.in_channels == 64
    assert paper.model.neck[1].out_channels == 256  # the inherited model is not modified


@pytest.mark.parametrize('kwargs, message', [
    (dict(norm_groups=3), 'norm_groups 3 does not divide base_channels 8'),
    (dict(fpn_channels=0), 'fpn_channels must be a positive integer, got 0'),
    (dict(base_channels=8.0), 'base_channels must be a positive integer, got 8.0'),
])
def test_bad_widths_are_one_line_errors(kwargs, message):
    model = dict(backbone=dict(), neck=dict(type='FPN'), rpn_head=dict(), roi_head=dict())
    args = dict(base_channels=8, stage_blocks=[1], fpn_channels=32, fc_channels=32,
                norm_groups=4)
    with pytest.raises(ValueError, match=message):
        reduced_width_detector(model, **dict(args, **kwargs))

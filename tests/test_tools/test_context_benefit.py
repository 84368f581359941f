"""tools/benchmark/context_benefit.py: the compared models are what the benchmark says."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope

import mp3d_mmdet  # noqa: F401  (registers the components)
from mmdet.registry import MODELS
from mp3d_mmdet.utils.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'benchmark', 'context_benefit.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('context_benefit', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name,backbone,in_slices', [
    ('mp3d_9slices', 'MP3DResNet', 9),
    ('2d_key_slice', 'ResNet', 1),
    ('3dce_9slices', 'ResNet3DCE', 9),
])
def test_variant_configs_build_the_compared_models(tmp_path, name, backbone, in_slices):
    tool = load_tool()
    path = tmp_path / f'{name}.py'
    path.write_text(tool._variant_config(name, str(tmp_path / 'work')))
    cfg = load_config(str(path))
    demo = load_config(osp.join(REPO, tool.DEMO_CONFIG))
    assert cfg.model.backbone.type == backbone
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader'].dataset.pipeline[0]
        assert loader.type == 'LoadCTSlices' and loader.num_slices == in_slices
        # the same data, window and schedule as the demo
        assert tuple(loader.hu_window) == tuple(demo.test_pipeline[0].hu_window)
        assert cfg[f'{split}_dataloader'].dataset.data_root == demo.data_root
    assert cfg.train_cfg.max_epochs == demo.train_cfg.max_epochs
    assert cfg.optim_wrapper.optimizer.lr == demo.optim_wrapper.optimizer.lr
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, in_slices, 64, 64))
    # the same FPN output for all: 5 levels of 64 channels, strides 4..64
    assert [tuple(f.shape) for f in feats] == [
        (1, 64, 64 // s, 64 // s) for s in (4, 8, 16, 32, 64)]


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        load_tool()._variant_config('resnet', '/tmp/x')

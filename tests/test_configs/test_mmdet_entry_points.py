"""mmdet's and mmengine's own entry points -- ``init_detector``, ``Runner.from_cfg``,
``DetInferencer`` -- build from every config in configs/ exactly the model the plugin's
entry points build (the configs write their slice-input places out); a config whose places
disagree with its top level is refused by the plugin's entry points, never built."""
import glob
import os.path as osp
import warnings
from typing import Union

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mp3d_mmdet  # noqa: F401
from mmdet.apis import DetInferencer, init_detector
from mmdet.registry import MODELS, RUNNERS
from mp3d_mmdet.utils.config import ConfigError, load_config

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*.py')))
MAIN = osp.join(CONFIG_DIR, 'mp3d_fpn_deeplesion_2x.py')
COCO = osp.join(CONFIG_DIR, 'mp3d_fpn_coco_pretrain_3slice_6x.py')


def _shapes(model: torch.nn.Module) -> dict:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _plugin_shapes(config: Union[str, Config]) -> dict:
    """The model as the plugin's runner and tools build it (shapes only, on the meta device)."""
    with torch.device('meta'):
        return _shapes(MODELS.build(load_config(config).model))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_init_detector_builds_the_plugins_model(path):
    cfg = Config.fromfile(path)  # read once (seconds): what init_detector(path) reads
    expected = _plugin_shapes(cfg)  # load_config works on a copy
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # 'checkpoint is None, use COCO classes by default.'
        model = init_detector(cfg, checkpoint=None, device='cpu')
    assert _shapes(model) == expected
    assert model.backbone.num_slices == cfg.num_slices


def test_runner_from_cfg_builds_the_plugins_model(tmp_path):
    cfg = Config.fromfile(MAIN)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)  # mmengine's runner: nothing resolved
    assert _shapes(runner.model) == _plugin_shapes(MAIN)


def test_det_inferencer_runs_where_the_pipeline_reads_an_image():
    """The COCO pre-training config reads images (RGBToSlices: 3 slices); the DeepLesion
    configs read slice stacks with LoadCTSlices, which DetInferencer cannot replace."""
    cfg = Config.fromfile(COCO)
    cfg.test_dataloader.dataset.pipeline[2].scale = (64, 64)  # small and fast
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        inferencer = DetInferencer(model=cfg, weights=None, device='cpu')
    assert _shapes(inferencer.model) == _plugin_shapes(COCO)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    result = inferencer(image, return_datasamples=True)
    assert result['predictions'][0].pred_instances.bboxes.shape[1] == 4
    with pytest.raises(ValueError, match='LoadImageFromFile is not found in the test pipeline'):
        DetInferencer(model=Config.fromfile(MAIN), weights=None, device='cpu')


def test_a_config_whose_places_disagree_with_its_top_level_is_refused(tmp_path):
    """A written-out config whose top level was changed without its places (the GTM and the
    loaders still hold 9): the plugin's entry points refuse it before building anything."""
    path = tmp_path / 'mp3d_13_half_written.py'
    path.write_text(f'_base_ = {MAIN!r}\nnum_slices = 13\n'
                    'model = dict(backbone=dict(num_slices=13))\n')
    message = (r'^num_slices = 13 \(top level\) but train_pipeline\[0\].num_slices = 9: the '
               r'places of num_slices follow the top level')
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / 'work')
    with pytest.raises(ConfigError, match=message):
        RUNNERS.build(cfg)  # DeviceAwareRunner, as `mim train` builds it
    assert not osp.exists(cfg.work_dir)  # refused before anything was built or written

"""The paper's DeepLesion config as the runner reads it, for tests that need its pipelines."""
import os.path as osp
from typing import List, Tuple

from mmengine.config import Config

from mp3d_mmdet.utils.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAIN_CONFIG = osp.join(REPO, 'configs', 'mp3d_fpn_deeplesion_2x.py')


def paper_config(num_slices: int = 9) -> Config:
    """``configs/mp3d_fpn_deeplesion_2x.py`` with ``num_slices`` (resolved: every loader,
    the backbone and the GTM carry it)."""
    return load_config(MAIN_CONFIG, {'num_slices': num_slices})


def paper_pipelines(num_slices: int = 9) -> Tuple[List[dict], List[dict]]:
    """``(train_pipeline, test_pipeline)`` of the paper's config (copies)."""
    cfg = paper_config(num_slices)
    return cfg.to_dict()['train_pipeline'], cfg.to_dict()['test_pipeline']

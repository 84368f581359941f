"""A small synthetic set shared by the tests of the generator's modules."""
import os.path as osp

import pytest

from mp3d_mmdet.datasets.dl_info import read_dl_info
from mp3d_mmdet.synthetic import make_synthetic_deeplesion


@pytest.fixture(scope='session')
def generated(tmp_path_factory):
    """``(root, summary, DL_info rows)`` of a 6-patient set of 96 px images (seed 11)."""
    root = str(tmp_path_factory.mktemp('synthetic'))
    summary = make_synthetic_deeplesion(root, num_patients=6, seed=11, image_size=96,
                                        progress=False)
    return root, summary, read_dl_info(osp.join(root, 'DL_info.csv'))

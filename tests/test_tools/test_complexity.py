"""tools/analysis/complexity.py: the paper's parameter counts and GFLOPs."""
import importlib.util
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/_base_/models/mp3d_fpn.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'complexity_tool', osp.join(REPO, 'tools/analysis/complexity.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import mp3d_mmdet  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return module


@pytest.mark.parametrize('num_slices,gflops', [(5, 156.84), (9, 248.93), (11, 294.97)])
def test_mp3d_fpn_matches_the_paper(tool, num_slices, gflops):
    cfg = tool.load_model_cfg(CONFIG, num_slices=num_slices)
    res = tool.measure(cfg, (512, 512), 1000)
    assert abs(res['macs'] / 1e9 - gflops) < 0.02
    assert res['params'] == 45_156_437 + 3840 * (num_slices - 9)  # GTM: 3840 per slice
    assert res['macs_roi'] == 1000 * (12544 * 1024 + 1024 + 1024 * 1024 + 1024
                                      + 1024 * 2 + 1024 * 4)


def test_mr3d_fpn_matches_the_paper(tool):
    cfg = tool.load_model_cfg(CONFIG, {'model.backbone.conv_type': '3d'})
    res = tool.measure(cfg, (512, 512), 1000)
    assert abs(res['params'] / 1e6 - 64.03) < 0.005
    assert abs(res['macs'] / 1e9 - 415.81) < 0.02


def test_conv_macs_hand_count(tool):
    MacCounter = tool.MacCounter
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=True)
    lin = torch.nn.Linear(10, 5)
    with torch.no_grad(), MacCounter() as c:
        y = torch.relu(conv(torch.zeros(2, 3, 8, 8)))
        torch.nn.functional.max_pool2d(y, 2)
        lin(torch.zeros(7, 10))
        torch.nn.functional.group_norm(y, 2)
    conv_macs = 2 * 4 * 8 * 8 * 3 * 9 + 2 * 4 * 8 * 8
    assert c.macs == conv_macs + 2 * 4 * 8 * 8 + 2 * 4 * 8 * 8 + 7 * 10 * 5
    assert c.by_op['convolution'] == conv_macs


def test_cli_report_and_paper_table(tool, capsys):
    assert tool.main([CONFIG, '--num-slices', '7', '--shape', '256', '256']) == 0
    out = capsys.readouterr().out
    assert 'input: 1 x 7 x 256 x 256; RoI head at 1000 proposals' in out
    assert 'params, whole detector:  45,148,757 (45.15 M)' in out
    assert tool.main([CONFIG, '--paper-table']) == 0
    table = capsys.readouterr().out
    assert '| MP3D FPN, 9 slices | 45.16 M | 45.16 M (45,156,437) | 248.93 |' in table
    assert '| MR3D FPN, 9 slices | 64.03 M | 64.03 M (64,029,781) | 415.81 |' in table
    assert table.count('\n| ') == 6  # header + 5 models


def test_cli_errors(tool):
    with pytest.raises(SystemExit):
        tool.main([CONFIG, '--shape', '16', '16'])
    with pytest.raises(ValueError, match='num_slices must be an odd int'):
        tool.measure(tool.load_model_cfg(CONFIG, num_slices=4), (64, 64), 10)

"""tools/benchmark/activation_memory.py: exact byte counts of what autograd saves, with CUDA
autocast's dtype rules applied by hand on the meta device."""
import json
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools', 'benchmark'))
import activation_memory  # noqa: E402


def conv_relu(device):
    with torch.device(device):
        return nn.Sequential(nn.Conv3d(2, 4, 1, bias=False), nn.ReLU())


@pytest.mark.parametrize('device', ['cpu', 'meta'])
def test_fp32_counts_the_relu_output_only(device):
    """The conv saves its input and weight (both left out), the ReLU its output."""
    x = torch.zeros(1, 2, 3, 4, 4, device=device)
    assert activation_memory.saved_bytes(conv_relu(device), x) == {
        'float32': 4 * 48 * 4, 'total': 768}


@pytest.mark.parametrize('device', ['cpu', 'meta'])
def test_amp_counts_the_16_bit_casts(device):
    """Under the emulated autocast the conv saves 16-bit copies of its input and weight, and
    its 16-bit output is what the ReLU saves."""
    model = activation_memory.emulate_amp(conv_relu(device))
    x = torch.zeros(1, 2, 3, 4, 4, device=device)
    assert activation_memory.saved_bytes(model, x) == {
        'float16': 2 * 48 * 2 + 4 * 2 * 2 + 4 * 48 * 2, 'total': 592}


def test_the_emulation_follows_cuda_autocasts_dtypes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU())
    x = torch.randn(1, 2, 3, 5, 5)
    expected = model(x)
    activation_memory.emulate_amp(model)
    assert type(model[0]).__name__ == 'HalfConv' and model[0](x).dtype == torch.float16
    out = model(x)
    assert out.dtype == torch.float32  # GroupNorm returns float32, as under CUDA autocast
    torch.testing.assert_close(out, expected, atol=2e-2, rtol=1e-2)
    half = activation_memory.emulate_amp(nn.Sequential(nn.Conv3d(2, 4, 1), nn.GroupNorm(2, 4)),
                                         half_norm=True)
    assert half(x).dtype == torch.float16


def test_main_table_for_the_3d_backbones(tmp_path, capsys):
    out = tmp_path / 'memory.json'
    assert activation_memory.main(['--batch-size', '2', '--models', 'mp3d', 'mr3d',
                                   '--json', str(out)]) == 0
    rows = {(r['model'], r['variant']): r for r in json.loads(out.read_text())['rows']}
    assert set(rows) == {(m, v) for m in ('mp3d', 'mr3d')
                         for v in ('default', 'half-norm', 'with-cp')}
    for model in ('mp3d', 'mr3d'):
        default, half, cp = (rows[(model, v)] for v in ('default', 'half-norm', 'with-cp'))
        # GroupNorm's float32 copies and outputs are what half-norm removes
        assert default['float32'] > 0.3 * default['total']
        assert half['total'] < default['total']
        assert cp['total'] < 0.35 * default['total']
    # exact, on every machine (meta tensors): a P3D pair keeps a second norm + ReLU output
    # where MR3D's 3 x 3 x 3 conv keeps one, so MP3D-63 saves more than MR3D
    assert rows[('mp3d', 'default')]['total'] == 10_789_274_240
    assert rows[('mr3d', 'default')]['total'] == 10_024_867_200
    assert '| mp3d | default |' in capsys.readouterr().out

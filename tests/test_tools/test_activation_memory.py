"""tools/benchmark/activation_memory.py: exact byte counts of what autograd saves."""
import os.path as osp
import sys

import torch
import torch.nn as nn

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools', 'benchmark'))
import activation_memory  # noqa: E402
import backbone_speed  # noqa: E402


def conv_relu():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(2, 4, 1, bias=False), nn.ReLU())


def test_fp32_counts_the_relu_output_only():
    """The conv saves its input and weight (both left out), the ReLU its output."""
    counts = activation_memory.saved_bytes(conv_relu(), torch.randn(1, 2, 3, 4, 4), 'fp32')
    assert counts == {'float32': 4 * 48 * 4, 'total': 768}


def test_amp_counts_the_16_bit_casts():
    """Under autocast the conv saves 16-bit copies of its input and weight, and its 16-bit
    output is what the ReLU saves."""
    counts = activation_memory.saved_bytes(conv_relu(), torch.randn(1, 2, 3, 4, 4), 'amp')
    assert counts == {'bfloat16': 2 * 48 * 2 + 4 * 2 * 2 + 4 * 48 * 2, 'total': 592}


def test_float32_group_norm_keeps_a_float32_copy_and_output():
    norm = nn.GroupNorm(2, 4)
    x = torch.randn(1, 4, 2, 3, 3).bfloat16()
    wrapped = activation_memory.Float32GroupNorm(norm)
    out = wrapped(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, norm(x.float()))
    half = backbone_speed.HalfGroupNorm(norm)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert half(x).dtype == torch.bfloat16


def test_main_table_for_the_3d_backbones(tmp_path, capsys):
    out = tmp_path / 'memory.json'
    assert activation_memory.main(['--batch-size', '1', '--num-slices', '3', '--shape', '32',
                                   '32', '--models', 'mp3d', 'mr3d', '--variants', 'default',
                                   'half-norm', '--json', str(out)]) == 0
    import json
    rows = {(r['model'], r['variant']): r for r in json.loads(out.read_text())['rows']}
    assert set(rows) == {('mp3d', 'default'), ('mr3d', 'default'), ('mp3d', 'half-norm'),
                         ('mr3d', 'half-norm')}
    # float32 GroupNorm outputs are what half-norm removes (CPU autocast keeps the stem's
    # max-pooled map in float32, see the module docstring)
    for model in ('mp3d', 'mr3d'):
        assert rows[(model, 'half-norm')]['float32'] < 0.1 * rows[(model, 'default')]['float32']
        assert rows[(model, 'half-norm')]['total'] < rows[(model, 'default')]['total']
    # the pseudo-3D pairs save less than MR3D's 3 x 3 x 3 convs at the same widths
    assert rows[('mp3d', 'default')]['total'] < rows[('mr3d', 'default')]['total']
    assert '| mp3d | default |' in capsys.readouterr().out

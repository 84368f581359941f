"""tools/benchmark/backbone_speed.py: the variants compute what the models compute, and the
JSON report holds every table."""
import json
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn

from mp3d_mmdet.models.backbones.p3d_blocks import P3DBottleneck

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools', 'benchmark'))
import backbone_speed  # noqa: E402


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('channels_last', [False, True])
def test_spatial_conv_as_2d_equals_the_3d_conv(stride, channels_last):
    torch.manual_seed(0)
    conv = nn.Conv3d(4, 6, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1))
    x = torch.randn(2, 4, 3, 9, 8)
    expected = conv(x)
    if channels_last:
        backbone_speed.to_channels_last(conv)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    got = backbone_speed.SpatialConvAs2d(conv)(x)
    assert got.shape == expected.shape == (2, 6, 3, -(-9 // stride), 8 // stride)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if channels_last:  # the fold and unfold were views: the layout is kept
        assert got.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize('variant', ['channels-last', 'fold-spatial', 'half-norm'])
def test_variants_keep_the_block_output(variant):
    torch.manual_seed(0)
    block = P3DBottleneck(16, 8, pair_type='C', spatial_stride=2,
                          norm_cfg=dict(type='GN', num_groups=4)).eval()
    x = torch.randn(1, 16, 3, 8, 8)
    with torch.no_grad():
        expected = block(x)
        model, x2 = backbone_speed.apply_variant(variant, block, x)
        got = model(x2)
    replaced = {'channels-last': (), 'fold-spatial': ('conv_s', ),
                'half-norm': ('norm1', 'norm_s', 'norm_t', 'norm3')}[variant]
    for name in replaced:
        assert type(getattr(model, name)).__name__ in ('SpatialConvAs2d', 'HalfGroupNorm')
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_json_report_has_one_table_per_variant_and_mode(tmp_path):
    out = tmp_path / 'speed.json'
    assert backbone_speed.main([
        '--shape', '32', '32', '--num-slices', '3', '--batch-size', '2', '--repeats', '1',
        '--warmup', '0', '--models', 'mp3d', 'resnet50', '--variants', 'default',
        'fold-spatial', '--json', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['batch_size'] == 2 and report['shape'] == [32, 32]
    assert [(t['variant'], t['mode']) for t in report['tables']] == [
        ('default', 'eval'), ('fold-spatial', 'eval')]
    rows = report['tables'][0]['rows']
    assert set(rows) == {'mp3d', 'resnet50'}
    # GMACs of the batch: MP3D-63 on 2 x 3 x 32 x 32 and ResNet-50 on 2 x 3 x 32 x 32
    assert rows['mp3d']['gmacs'] > rows['resnet50']['gmacs'] > 0
    assert rows['mp3d']['best_ms'] > 0 and rows['mp3d']['peak_mib'] is None

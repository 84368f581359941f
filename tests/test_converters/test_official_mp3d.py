"""mp3d_mmdet.converters.official_mp3d: official MP3D checkpoints (every key and shape from
``official_mp3d_state_dict.json``, the layout of the authors' code at 3 slices / 80 classes
and 9 slices / 1 class) load strictly into the plugin's detectors, and the converted backbone
+ GTM compute what the official network computes."""
import json
import os.path as osp
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mp3d_mmdet.cli import convert_official_checkpoint as cli
from mp3d_mmdet.converters import (check_official_state_dict, convert_official_checkpoint,
                                   convert_official_state_dict)
from mp3d_mmdet.utils.config import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LAYOUTS = json.load(open(osp.join(osp.dirname(__file__), 'official_mp3d_state_dict.json')))
#: layout -> (slices, classes, the plugin config of the matching detector)
CASES = {'3_slices_80_classes': (3, 80, 'mp3d_fpn_coco_pretrain_3slice_6x.py'),
         '9_slices_1_classes': (9, 1, 'mp3d_fpn_deeplesion_2x.py')}


def official_state_dict(layout: str, seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Random tensors under every official key of ``layout``."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((key, torch.randn(shape, generator=g)) for key, shape in LAYOUTS[layout])


def plugin_detector(config: str, device: str = 'meta'):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    with torch.device(device):
        return MODELS.build(load_config(osp.join(REPO, 'configs', config)).model)


@pytest.mark.parametrize('layout', sorted(CASES))
@pytest.mark.parametrize('form', ['detector', 'module.', 'backbone only', 'bare backbone'])
def test_converted_weights_load_strictly_into_the_plugin_detector(layout, form):
    slices, classes, config = CASES[layout]
    official = official_state_dict(layout)
    source = official
    if form == 'module.':
        source = OrderedDict(('module.' + k, v) for k, v in official.items())
    elif form != 'detector':
        source = OrderedDict((k, v) for k, v in official.items() if k.startswith('backbone.'))
        if form == 'bare backbone':
            source = OrderedDict((k[len('backbone.'):], v) for k, v in source.items())
    converted, report = convert_official_state_dict(source, slices, classes)
    model = plugin_detector(config)
    if form in ('detector', 'module.'):
        model.load_state_dict(converted, strict=True, assign=True)
        assert len(converted) == len(official) == 241
    else:  # the backbone and the GTM (the official backbone holds the GTM)
        model.backbone.load_state_dict(
            {k[len('backbone.'):]: v for k, v in converted.items()
             if k.startswith('backbone.')}, strict=True, assign=True)
        model.neck[0].load_state_dict(
            {k[len('neck.0.'):]: v for k, v in converted.items() if k.startswith('neck.0.')},
            strict=True, assign=True)
        assert len(converted) == len(source) == 211
    # every tensor is the official one under its new name
    assert converted['backbone.conv1.weight'] is official['backbone.conv1_custom.weight']
    assert converted['backbone.layer3.5.conv_s.weight'] is \
        official['backbone.layer3.5.conv2.weight']
    assert converted['backbone.layer3.5.conv_t.weight'] is \
        official['backbone.layer3.5.conv3.weight']
    assert converted['backbone.layer4.0.norm3.bias'] is official['backbone.layer4.0.norm_4.bias']
    assert converted['neck.0.convs.3.weight'] is official['backbone.groupconv_4.weight']
    if form in ('detector', 'module.'):
        assert converted['neck.1.fpn_convs.2.conv.weight'] is \
            official['neck.fpn_convs.2.conv.weight']
        assert converted['roi_head.bbox_head.fc_cls.weight'] is \
            official['roi_head.bbox_head.fc_cls.weight']
    assert report.adapted == [] and report.dropped == []
    assert report.source_num_slices == [slices] * 4
    assert report.num_classes == (classes if form in ('detector', 'module.') else None)
    # unchanged names: the stem norm, every block's conv1 and the shortcuts (30), the heads
    detector = form in ('detector', 'module.')
    assert (len(report.renamed), len(report.carried)) == ((197, 44) if detector else (181, 30))
    table = report.table()
    assert table.splitlines()[-1].startswith(f'total: {len(report.renamed)} renamed, '
                                             f'{len(report.carried)} carried, 0 adapted')


def test_authors_coco_weights_to_a_9_slice_lesion_detector(tmp_path):
    """The Table 1 recipe: 3 slices / 80 classes -> 9 slices / 1 class; the GTM moves by the
    plugin's rule and the class-specific RoI layers are dropped."""
    official = official_state_dict('3_slices_80_classes')
    for level in range(1, 5):  # the untrained 'mean' GTM: 1/3 per slice
        official[f'backbone.groupconv_{level}.weight'].fill_(1 / 3)
    src, dst = tmp_path / 'mp3d63-d720bda1.pth', tmp_path / 'out' / 'mp3d63_9slice.pth'
    torch.save({'meta': {'mmdet_version': '2.25.0'}, 'state_dict': official,
                'optimizer': {}}, str(src))
    report = convert_official_checkpoint(str(src), str(dst), num_slices=9, num_classes=1)
    assert [k for k, _ in report.dropped] == [
        'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias',
        'roi_head.bbox_head.fc_reg.weight', 'roi_head.bbox_head.fc_reg.bias']
    assert [(k, old, new) for k, old, new in report.adapted][0] == (
        'neck.0.convs.0.weight', (256, 3, 1, 1), (256, 9, 1, 1))
    saved = torch.load(str(dst), weights_only=True)
    assert saved['meta']['conversion']['num_slices'] == 9
    state_dict = saved['state_dict']
    torch.testing.assert_close(state_dict['neck.0.convs.2.weight'],
                               torch.full((1024, 9, 1, 1), 1 / 9))
    model = plugin_detector('mp3d_fpn_deeplesion_2x.py')
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    assert unexpected == [] and sorted(missing) == sorted(k for k, _ in report.dropped)


def test_converted_backbone_and_gtm_compute_what_the_official_network_computes():
    official = official_state_dict('9_slices_1_classes', seed=1)
    converted, _ = convert_official_state_dict(official)
    model = plugin_detector('mp3d_fpn_deeplesion_2x.py', device='cpu').eval()
    model.load_state_dict(converted, strict=True)
    x = torch.randn(1, 9, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plugin = model.neck[0](model.backbone(x))
        reference = official_backbone_forward(official, x)
    assert [tuple(p.shape) for p in plugin] == [(1, 256, 16, 16), (1, 512, 8, 8),
                                                (1, 1024, 4, 4), (1, 2048, 2, 2)]
    for got, expected in zip(plugin, reference):
        assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def official_backbone_forward(sd, x):
    """The official MP3D-63 + GTM forward, written from its specification (the shared facts:
    stem 1x7x7 / GN / ReLU / max-pool; blocks of 3/4/6/3 with pair 'ABC'[k % 3] of the
    global block index k, every conv followed by GN(32) and ReLU, the block output
    ReLU(GN(conv4(pair)) + shortcut); GTM: (B, C, D, H, W) viewed as (B, C*D, H, W), then a
    grouped 1x1 conv)."""
    def norm(t, prefix, relu=True):
        t = F.group_norm(t, 32, sd[prefix + '.weight'], sd[prefix + '.bias'])
        return F.relu(t) if relu else t

    x = F.conv3d(x.unsqueeze(1), sd['backbone.conv1_custom.weight'], stride=(1, 2, 2),
                 padding=(0, 3, 3))
    x = F.max_pool3d(norm(x, 'backbone.norm1'), 3, (1, 2, 2), 1)
    outs, k = [], 0
    for stage, blocks in enumerate((3, 4, 6, 3), 1):
        for b in range(blocks):
            p = f'backbone.layer{stage}.{b}.'
            stride = (1, 2, 2) if b == 0 and stage > 1 else (1, 1, 1)
            inner = norm(F.conv3d(x, sd[p + 'conv1.weight'], stride=stride), p + 'norm_1')

            def spatial(t):
                return norm(F.conv3d(t, sd[p + 'conv2.weight'], padding=(0, 1, 1)),
                            p + 'norm_2')

            def temporal(t):
                return norm(F.conv3d(t, sd[p + 'conv3.weight'], padding=(1, 0, 0)),
                            p + 'norm_3')
            kind = 'ABC'[k % 3]
            if kind == 'A':
                pair = temporal(spatial(inner))
            elif kind == 'B':
                pair = spatial(inner) + temporal(inner)
            else:
                s = spatial(inner)
                pair = s + temporal(s)
            out = norm(F.conv3d(pair, sd[p + 'conv4.weight']), p + 'norm_4', relu=False)
            shortcut = x
            if p + 'downsample.0.weight' in sd:
                shortcut = norm(F.conv3d(x, sd[p + 'downsample.0.weight'], stride=stride),
                                p + 'downsample.1', relu=False)
            x = F.relu(out + shortcut)
            k += 1
        b_, c, d, h, w = x.shape
        outs.append(F.conv2d(x.reshape(b_, c * d, h, w), sd[f'backbone.groupconv_{stage}.weight'],
                             groups=c))
    return outs


def test_refusals_name_what_is_wrong(tmp_path):
    official = official_state_dict('9_slices_1_classes')
    plugin, _ = convert_official_state_dict(official)
    with pytest.raises(ValueError, match=r'^x\.pth: no backbone\.conv1_custom\.weight \(the '
                       r'official MP3D stem\): not an official MP3D checkpoint \(this is '
                       r"already the plugin's layout"):
        check_official_state_dict(plugin, 'x.pth')
    no_gtm = OrderedDict((k, v) for k, v in official.items() if 'groupconv_3' not in k)
    with pytest.raises(ValueError, match=r'no backbone\.groupconv_3\.weight \(the official '
                       r'GTM, level 3 of 4\)'):
        convert_official_state_dict(no_gtm)
    extra = OrderedDict(official, **{'backbone.layer1.0.conv5.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'backbone\.layer1\.0\.conv5\.weight is not a weight '
                       r'of the official MP3D-63 backbone'):
        convert_official_state_dict(extra)
    with pytest.raises(ValueError, match='num_slices'):
        convert_official_state_dict(official, num_slices=4)
    src = tmp_path / 'official.pth'
    torch.save({'state_dict': official}, str(src))
    (tmp_path / 'link').symlink_to(tmp_path)
    assert cli.main([str(src), str(tmp_path / 'link' / 'official.pth')]) == 1
    assert torch.load(str(src), weights_only=True)['state_dict'].keys() == official.keys()


def test_command_prints_the_table(tmp_path, capsys):
    src = tmp_path / 'official.pth'
    torch.save({'state_dict': official_state_dict('3_slices_80_classes')}, str(src))
    assert cli.main([str(src), str(tmp_path / 'out.pth'), '--num-slices', '5',
                     '--num-classes', '1']) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith('official MP3D, GTM slices [3, 3, 3, 3], 80 classes -> '
                                        f'{tmp_path / "out.pth"}: 5 slices')
    assert out.splitlines()[-1].startswith('total: 193 renamed, 40 carried, 4 adapted')
    assert 'renamed  16       3,344,384        neck.1' in out  # the FPN, under its new name
    assert cli.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'o.pth')]) == 1
    assert capsys.readouterr().err.startswith('mp3d-convert-official-checkpoint: error: ')

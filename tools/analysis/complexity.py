"""Parameters and GFLOPs (multiply-adds) of a detector config, the MP3D paper's way.

Counting convention (reproduces the paper's Table 1-2 figures): one FLOP = one
multiply-add (MAC) of a convolution (+1 per output element for a conv bias) or a matrix
product (Linear; no bias), plus one per ReLU output element and one per pooling input
element; normalisation layers (GroupNorm), element-wise sums, interpolation and RoIAlign
are not counted. The detector is measured as backbone + neck + RPN head on one
``(1, N, H, W)`` input plus the RoI box head on ``--proposals`` RoIs (default 1,000, the
RPN's test-time proposal count). Counting runs on ``meta`` tensors (shapes only), so a
512 x 512 detector takes seconds. See ``mp3d_mmdet/utils/op_counter.py``.

Usage::

    python tools/analysis/complexity.py configs/_base_/models/mp3d_fpn.py
    python tools/analysis/complexity.py CONFIG --num-slices 5 --shape 512 512
    python tools/analysis/complexity.py CONFIG --cfg-options model.backbone.conv_type=3d
    python tools/analysis/complexity.py configs/_base_/models/mp3d_fpn.py --paper-table

``--paper-table`` measures the MP3D FPN of CONFIG at 5/7/9/11 slices and its MR3D
variant (``backbone.conv_type='3d'``) at 9 slices, and prints a markdown table with the
paper's figures beside them.
"""
import argparse
import copy
import sys
from typing import Dict, Optional, Sequence

import torch

from mp3d_mmdet.utils.op_counter import MacCounter

# The paper's figures (Zhang et al., MICCAI 2020: Table 2 and section 3.2).
PAPER = [
    # (label, conv_type, slices, paper params in M or None, paper GFLOPs)
    ('MP3D FPN, 5 slices', 'p3d', 5, None, 156.84),
    ('MP3D FPN, 7 slices', 'p3d', 7, None, 202.88),
    ('MP3D FPN, 9 slices', 'p3d', 9, 45.16, 248.93),
    ('MP3D FPN, 11 slices', 'p3d', 11, None, 294.97),
    ('MR3D FPN, 9 slices', '3d', 9, 64.03, 415.81),
]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='config file with a `model` dict')
    p.add_argument('--num-slices', type=int, default=None,
                   help='override the slice count (backbone and neck adapters)')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), default=(512, 512))
    p.add_argument('--proposals', type=int, default=1000,
                   help='RoIs through the box head (default 1000)')
    p.add_argument('--paper-table', action='store_true',
                   help="measure the paper's models and print a markdown table")
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                   help='override config keys, e.g. model.backbone.conv_type=3d')
    args = p.parse_args(argv)
    if args.proposals < 0 or min(args.shape) < 32:
        p.error('--proposals must be >= 0 and --shape at least 32 x 32')
    return args


def load_model_cfg(path: str, cfg_options: Optional[Dict] = None,
                   num_slices: Optional[int] = None) -> Dict:
    """The ``model`` dict of a config file, read as the runner reads it
    (:func:`mp3d_mmdet.utils.config.load_config`: ``--cfg-options`` merged, then the
    top-level ``num_slices`` -- ``num_slices`` here when given -- passed to the backbone and
    the neck adapter)."""
    from mp3d_mmdet.utils.config import load_config
    options = dict(cfg_options or {})
    if num_slices is not None:
        options['num_slices'] = num_slices
    cfg = load_config(path, options)
    if 'model' not in cfg:
        raise ValueError(f'{path}: no `model` in the config')
    return copy.deepcopy(cfg.model)


def input_channels(backbone: torch.nn.Module) -> int:
    """Channels of the network input: the slice count of a slice backbone, else the input
    channels of the backbone's first conv."""
    num_slices = getattr(backbone, 'num_slices', None)
    if num_slices is not None:
        return int(num_slices)
    first_conv = next(m for m in backbone.modules()
                      if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    return int(first_conv.in_channels)


def measure(model_cfg: Dict, shape: Sequence[int], proposals: int) -> Dict[str, float]:
    """Params and MACs of a detector, by part.

    Returns a dict with ``params`` / ``params_backbone_neck`` (counts) and ``macs``,
    ``macs_backbone``, ``macs_neck``, ``macs_rpn``, ``macs_roi`` (multiply-adds), plus
    ``num_slices`` and the input ``shape``.
    """
    from mmdet.registry import MODELS
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    model.eval()
    n = input_channels(model.backbone)
    h, w = shape
    res: Dict[str, float] = dict(num_slices=n, shape=(h, w))
    res['params'] = sum(p.numel() for p in model.parameters())
    parts = [model.backbone] + ([model.neck] if getattr(model, 'neck', None) else [])
    res['params_backbone_neck'] = sum(p.numel() for m in parts for p in m.parameters())
    with torch.no_grad():
        x = torch.zeros(1, n, h, w, device='meta')
        with MacCounter() as c:
            feats = model.backbone(x)
        res['macs_backbone'] = c.macs
        res['macs_neck'] = 0
        if getattr(model, 'neck', None) is not None:
            with MacCounter() as c:
                feats = model.neck(feats)
            res['macs_neck'] = c.macs
        res['macs_rpn'] = 0
        head = getattr(model, 'rpn_head', None) or getattr(model, 'bbox_head', None)
        if head is not None:
            with MacCounter() as c:
                head(feats)
            res['macs_rpn'] = c.macs
        res['macs_roi'] = 0
        roi_head = getattr(model, 'roi_head', None)
        if roi_head is not None and proposals > 0:
            extractor = roi_head.bbox_roi_extractor
            size = extractor.roi_layers[0].output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            rois = torch.zeros(proposals, extractor.out_channels, *size, device='meta')
            with MacCounter() as c:
                roi_head.bbox_head(rois)
            res['macs_roi'] = c.macs
    res['macs'] = res['macs_backbone'] + res['macs_neck'] + res['macs_rpn'] + \
        res['macs_roi']
    return res


def report(res: Dict[str, float], proposals: int) -> str:
    h, w = res['shape']
    g = 1e9
    lines = [
        f"input: 1 x {res['num_slices']} x {h} x {w}; RoI head at {proposals} proposals",
        'convention: GFLOPs = 1e9 multiply-adds of convs (+bias), Linear, ReLU and '
        'pooling; norms, sums, interpolation, RoIAlign not counted',
        f"params, whole detector:  {res['params']:,} ({res['params'] / 1e6:.2f} M)",
        f"params, backbone + neck: {res['params_backbone_neck']:,} "
        f"({res['params_backbone_neck'] / 1e6:.2f} M)",
        f"GFLOPs, whole detector:  {res['macs'] / g:.2f}",
        f"GFLOPs, backbone + neck: {(res['macs_backbone'] + res['macs_neck']) / g:.2f} "
        f"(backbone {res['macs_backbone'] / g:.2f}, neck {res['macs_neck'] / g:.2f})",
        f"GFLOPs, RPN head {res['macs_rpn'] / g:.2f}, RoI box head "
        f"{res['macs_roi'] / g:.2f}",
    ]
    return '\n'.join(lines)


def paper_table(config: str, cfg_options: Optional[Dict], shape: Sequence[int],
                proposals: int) -> str:
    """Markdown table: the paper's params/GFLOPs beside the measured ones (the MP3D FPN of
    ``config`` at each slice count, and its MR3D variant)."""
    rows = [
        '| model | params (paper) | params (measured) | GFLOPs (paper) | '
        'GFLOPs (measured) | GFLOPs diff |',
        '|---|---|---|---|---|---|',
    ]
    for label, conv_type, n, p_params, p_gflops in PAPER:
        cfg = load_model_cfg(config, dict(cfg_options or {}, **{
            'model.backbone.type': 'MP3DResNet', 'model.backbone.conv_type': conv_type}), n)
        res = measure(cfg, shape, proposals)
        gflops = res['macs'] / 1e9
        paper_p = f'{p_params:.2f} M' if p_params is not None else '-'
        rows.append(f"| {label} | {paper_p} | {res['params'] / 1e6:.2f} M "
                    f"({res['params']:,}) | {p_gflops:.2f} | {gflops:.3f} | "
                    f'{gflops - p_gflops:+.3f} ({(gflops / p_gflops - 1) * 100:+.3f} %) |')
    return '\n'.join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import mp3d_mmdet  # noqa: F401  (registers the plugin's models)
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    if args.paper_table:
        h, w = args.shape
        print(f'Paper (Zhang et al., MICCAI 2020) vs measured, {h} x {w} input, RoI head at '
              f'{args.proposals} proposals; GFLOPs = 1e9 multiply-adds of convs (+bias), '
              'Linear, ReLU and pooling (norms not counted).\n')
        print(paper_table(args.config, args.cfg_options, args.shape, args.proposals))
        return 0
    model_cfg = load_model_cfg(args.config, args.cfg_options, args.num_slices)
    print(report(measure(model_cfg, args.shape, args.proposals), args.proposals))
    return 0


if __name__ == '__main__':
    sys.exit(main())

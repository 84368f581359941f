"""Reduced-width MP3D FPN detectors: one definition of which layers follow the width.

The paper's network (MP3D-63, 256-channel FPN, 1024-channel box head) is too wide to train in
minutes on a CPU. :func:`reduced_width_detector` returns the override of an inherited Faster
R-CNN model config (a partial ``model`` dict that mmengine merges into the inherited one) for a
narrower backbone, fewer blocks per stage and a narrower FPN and heads, every channel count
that depends on another derived from it here (the adapter's and the FPN's
input widths from the backbone's stage widths, the heads' from the FPN's). The demo config
(``configs/mp3d_fpn_synthetic_demo.py``) and the tests' tiny models call it with their widths,
so both shrink the network the same way; the widths themselves live in their configs.
"""
import copy
from typing import Any, Dict, Mapping, Sequence

from .backbones.p3d_blocks import P3DBottleneck

__all__ = ['stage_channels', 'reduced_width_detector']


def stage_channels(base_channels: int, num_stages: int = 4) -> list:
    """Output channels of the backbone's stages: ``4 * base_channels * 2**i``.

    Args:
        base_channels: width of the first stage's inner convs.
        num_stages: number of stages.

    Returns:
        ``num_stages`` channel counts, e.g. ``[256, 512, 1024, 2048]`` for 64.
    """
    return [base_channels * 2**i * P3DBottleneck.expansion for i in range(num_stages)]


def reduced_width_detector(model: Mapping[str, Any], base_channels: int,
                           stage_blocks: Sequence[int], fpn_channels: int, fc_channels: int,
                           norm_groups: int) -> Dict[str, Any]:
    """The ``model`` override that narrows an inherited MP3D / MR3D FPN Faster R-CNN.

    Args:
        model: the inherited ``model`` config (``backbone``, ``neck`` = ``[slice adapter,
            FPN]`` or ``FPN``, ``rpn_head``, ``roi_head``); not modified.
        base_channels: the backbone's first-stage inner width (64 in the paper).
        stage_blocks: blocks per stage (``[3, 4, 6, 3]`` in the paper); its length is the
            number of stages.
        fpn_channels: the FPN's output width, which the RPN and RoI heads read (256).
        fc_channels: the box head's fully connected width (1024).
        norm_groups: groups of the backbone's group norm (32); must divide every width.

    Returns:
        A partial ``model`` dict: ``backbone`` (``base_channels``, ``stage_blocks``,
        ``norm_cfg``), the whole ``neck`` list (a list replaces the inherited one, so it is
        the inherited neck with new widths), ``rpn_head`` and ``roi_head`` widths. A config
        assigns it to ``model`` (and may add keys) for mmengine to merge into the base.

    Raises:
        ValueError: a width that is not a positive integer, or ``norm_groups`` not dividing
            ``base_channels``.
    """
    for name, value in (('base_channels', base_channels), ('fpn_channels', fpn_channels),
                        ('fc_channels', fc_channels), ('norm_groups', norm_groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'reduced_width_detector: {name} must be a positive integer, '
                             f'got {value!r}')
    if base_channels % norm_groups:
        raise ValueError(f'reduced_width_detector: norm_groups {norm_groups} does not divide '
                         f'base_channels {base_channels}')
    widths = stage_channels(base_channels, len(stage_blocks))
    inherited_neck = model['neck']
    necks = [dict(copy.deepcopy(dict(neck)), in_channels=list(widths)) for neck in (
        inherited_neck if isinstance(inherited_neck, (list, tuple)) else [inherited_neck])]
    necks[-1]['out_channels'] = fpn_channels
    norm_cfg = dict(copy.deepcopy(dict(model['backbone'].get('norm_cfg') or {})),
                    num_groups=norm_groups)
    return dict(
        backbone=dict(base_channels=base_channels, stage_blocks=list(stage_blocks),
                      norm_cfg=norm_cfg),
        neck=necks if isinstance(inherited_neck, (list, tuple)) else necks[0],
        rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=fpn_channels),
                      bbox_head=dict(in_channels=fpn_channels, fc_out_channels=fc_channels)))

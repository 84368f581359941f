"""From a COCO 3-slice pre-training checkpoint to the initialisation of an N-slice detector.

Zhang et al., MICCAI 2020, section 2.2: the MP3D FPN pre-trained on COCO with 3 slices
(R, G, B; ``configs/mp3d_fpn_coco_pretrain_3slice_6x.py``) initialises lesion detectors
that take any odd number ``N`` of slices. What :func:`convert_pretrained_state_dict` does
to every tensor of the pre-training detector's state dict:

* **carried** unchanged -- everything whose shape does not depend on the slice count or
  the classes: the whole MP3D backbone (``backbone.*``: its stem is a ``1 x 7 x 7`` conv on
  one slice, its ``3 x 1 x 1`` slice convs slide along the slice axis and group norms
  have no slice dimension, so no weight depends on ``N``), the FPN (``neck.1.*``), the RPN
  (``rpn_head.*``: same number of anchors per location) and the shared fully connected
  layers of the RoI head (``roi_head.bbox_head.shared_fcs.*``); any other key is carried
  too (and reported by the loader if the target detector has no such parameter);
* **adapted** -- the GTM weights ``neck.0.convs.<i>.weight``, ``(C_i, D, 1, 1)`` with
  ``D = 3``, resampled to ``(C_i, N, 1, 1)`` by
  :func:`~mp3d_mmdet.models.necks.group_transform.resample_slice_weights`: linear
  interpolation along the slice axis with aligned ends (the first, centre and last of
  the ``D`` slices land on the first, centre and last of the ``N``; slice ``n`` of the
  new weights reads the old profile at position ``n * (D - 1) / (N - 1)``), then scaled
  by ``D / N`` so that the sum over the slices -- the response to a stack of identical
  slices -- is kept (exactly for constant and linear weight profiles, approximately
  otherwise). E.g. the untrained "mean" GTM ``1/3`` per slice becomes ``1/N`` per slice;
  ``(a, b, c)`` to 5 slices becomes ``(a, (a+b)/2, b, (b+c)/2, c) * 3/5``. This is the
  rule the :class:`~mp3d_mmdet.models.necks.GroupTransform` loader applies by itself;
  the converter applies it explicitly so that the written checkpoint has the target
  shapes and the change is recorded;
* **dropped** -- the 80-class RoI classifier and box regressor
  (``roi_head.bbox_head.fc_cls.*``, ``roi_head.bbox_head.fc_reg.*``), whose shapes
  depend on the classes: the lesion detector initialises its own. Loading the result
  into a DeepLesion detector therefore reports exactly these four keys
  (``fc_cls.weight``, ``fc_cls.bias``, ``fc_reg.weight``, ``fc_reg.bias``) as missing.

Only an MP3D FPN (or its full-3D sibling MR3D: same class, same key layout) with a GTM
neck is accepted: :func:`check_mp3d_fpn_state_dict` raises a one-line ``ValueError``
naming what is wrong for anything else (a 2D ResNet stem, no ``backbone.`` keys, no GTM).
"""
import math
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..models.necks.group_transform import adapt_gtm_weights, gtm_weight_levels
from ..utils.checkpoint_files import load_state_dict_file
from ..utils.safe_files import atomic_write, check_output_path, check_replaceable
from ..utils.validation import check_num_slices

__all__ = [
    'GTM_PREFIX', 'DROPPED_PREFIXES', 'ConversionReport', 'check_mp3d_fpn_state_dict',
    'convert_pretrained_state_dict', 'convert_pretrained_checkpoint', 'save_converted_checkpoint',
    'check_converter_destination'
]

#: Key prefix of the GroupTransform, the first element of the detector's neck list.
GTM_PREFIX = 'neck.0.'
#: The class-dependent RoI head layers that the conversion drops.
DROPPED_PREFIXES = ('roi_head.bbox_head.fc_cls.', 'roi_head.bbox_head.fc_reg.')

GTM_RULE = ('linear resampling along the slice axis, ends aligned, scaled by D_old/D_new '
            '(mp3d_mmdet.models.necks.group_transform.resample_slice_weights)')

Shape = Tuple[int, ...]


@dataclass
class ConversionReport:
    """What a conversion did to every key (see the module doc for the rules).

    Attributes:
        backbone: ``'MP3D'`` (pseudo-3D pairs) or ``'MR3D'`` (full 3D convs).
        source_num_slices: slice count of every GTM level in the source (``[3, 3, 3, 3]``
            for the COCO pre-training without slice pooling).
        num_slices: the target slice count ``N``.
        num_classes: classes of the source RoI classifier (``fc_cls`` rows minus the
            background row), ``None`` without ``fc_cls``.
        carried: ``(key, shape)`` of the tensors copied unchanged.
        adapted: ``(key, old shape, new shape)`` of the resampled GTM weights.
        dropped: ``(key, shape)`` of the tensors left out.
        renamed: ``(source key, new key, shape)`` of the tensors copied under another
            name (conversions from other code bases, :mod:`.official_mp3d`).
    """

    backbone: str
    source_num_slices: List[int]
    num_slices: int
    num_classes: Optional[int] = None
    carried: List[Tuple[str, Shape]] = field(default_factory=list)
    adapted: List[Tuple[str, Shape, Shape]] = field(default_factory=list)
    dropped: List[Tuple[str, Shape]] = field(default_factory=list)
    renamed: List[Tuple[str, str, Shape]] = field(default_factory=list)

    def table(self) -> str:
        """A text table: renamed and carried keys grouped by (new) module, adapted and
        dropped keys one by one.

        Columns: action, number of tensors, number of values, module or key, shape(s).
        """
        rows: List[Tuple[str, str, str, str, str]] = []
        for action, entries in (('renamed', [(new, shape) for _, new, shape in self.renamed]),
                                ('carried', self.carried)):
            groups: Dict[str, List[int]] = OrderedDict()
            for key, shape in entries:
                counts = groups.setdefault(_module_group(key), [0, 0])
                counts[0] += 1
                counts[1] += math.prod(shape)
            for group, (tensors, values) in groups.items():
                rows.append((action, str(tensors), f'{values:,}', group, ''))
        for key, old, new in self.adapted:
            rows.append(('adapted', '1', f'{math.prod(old):,} -> {math.prod(new):,}', key,
                         f'{old} -> {new}'))
        for key, shape in self.dropped:
            rows.append(('dropped', '1', f'{math.prod(shape):,}', key, str(shape)))
        header = ('action', 'tensors', 'values', 'module / key', 'shape')
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
        lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                 for r in [header] + rows]
        lines.insert(1, '  '.join('-' * w for w in widths))
        renamed = f'{len(self.renamed)} renamed, ' if self.renamed else ''
        lines.append(f'total: {renamed}{len(self.carried)} carried, {len(self.adapted)} '
                     f'adapted (GTM: {GTM_RULE}), {len(self.dropped)} dropped')
        return '\n'.join(lines)


def _module_group(key: str) -> str:
    """Module a carried key is counted under, e.g. ``backbone.layer1``, ``neck.1``."""
    parts = key.split('.')
    depth = 3 if parts[0] == 'roi_head' else 2
    return '.'.join(parts[:min(depth, len(parts) - 1)]) or key


def check_mp3d_fpn_state_dict(state_dict: Mapping[str, Tensor],
                              source: str = 'checkpoint') -> Tuple[str, List[int]]:
    """Check that ``state_dict`` is an MP3D FPN detector's; return its backbone and slices.

    Args:
        state_dict: detector state dict (keys ``backbone.*``, ``neck.0.*`` (GTM),
            ``neck.1.*`` (FPN), ``rpn_head.*``, ``roi_head.*``).
        source: name used in error messages (e.g. the checkpoint path).

    Returns:
        ``(backbone, depths)``: ``'MP3D'`` or ``'MR3D'``, and the GTM slice count ``D_i``
        of every level (``[3, 3, 3, 3]`` for the 3-slice pre-training).

    Raises:
        ValueError: (one line, naming ``source`` and the offending key) no ``backbone.``
            keys; a backbone stem that is not the MP3D one (e.g. the 4-D
            ``(64, 3, 7, 7)`` stem of a 2D ResNet); blocks that are neither P3D pairs
            nor 3D convs; no GTM weights ``neck.0.convs.<i>.weight`` or one that is not
            ``(C, D, 1, 1)``.
    """
    if not any(k.startswith('backbone.') for k in state_dict):
        raise ValueError(f'{source}: no backbone.* weights, not a detector checkpoint '
                         '(expected an MP3D FPN, e.g. from '
                         'configs/mp3d_fpn_coco_pretrain_3slice_6x.py)')
    stem = state_dict.get('backbone.conv1.weight')
    if stem is None:
        raise ValueError(f'{source}: no backbone.conv1.weight: the backbone is not an MP3D '
                         'ResNet (its stem conv)')
    if stem.dim() != 5 or stem.shape[1] != 1:
        kind = 'a 2D backbone stem (e.g. a 2D ResNet)' if stem.dim() == 4 else 'unknown'
        raise ValueError(f'{source}: backbone.conv1.weight is {tuple(stem.shape)}, {kind}; '
                         'an MP3D stem is a 5-D (C, 1, k, 7, 7) kernel applied per slice')
    if 'backbone.layer1.0.conv_s.weight' in state_dict:
        backbone = 'MP3D'
    elif getattr(state_dict.get('backbone.layer1.0.conv2.weight'), 'dim', lambda: 0)() == 5:
        backbone = 'MR3D'
    else:
        raise ValueError(f'{source}: backbone.layer1.0 has neither P3D pair weights '
                         '(conv_s/conv_t) nor a 3-D conv2: not an MP3D/MR3D ResNet')
    levels = list(gtm_weight_levels(state_dict, GTM_PREFIX).values())
    if not levels:
        raise ValueError(f'{source}: no GroupTransform weights {GTM_PREFIX}convs.<i>.weight: '
                         'the neck is not [GroupTransform, FPN] (e.g. CenterSliceTransform '
                         'has no weights to adapt)')
    depths = []
    for key in levels:
        w = state_dict[key]
        if w.dim() != 4 or tuple(w.shape[2:]) != (1, 1):
            raise ValueError(f'{source}: {key} is {tuple(w.shape)}, expected a GTM weight '
                             '(C, D, 1, 1)')
        depths.append(int(w.shape[1]))
    return backbone, depths


def convert_pretrained_state_dict(
        state_dict: Mapping[str, Tensor],
        num_slices: int,
        source: str = 'checkpoint') -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Convert a pre-training detector state dict for an ``num_slices``-slice detector.

    Args:
        state_dict: the MP3D FPN state dict of the pre-training (3 slices, 80 classes).
        num_slices: slice count ``N`` of the target detector (odd, >= 1).
        source: name used in error messages.

    Returns:
        ``(new_state_dict, report)``: the carried and adapted tensors (same key order
        as the input, dropped keys left out; tensors are the input's, the GTM weights
        new ``(C_i, N, 1, 1)`` tensors of the same dtype) and what was done to each key.

    Raises:
        ValueError: ``num_slices`` is not an odd int >= 1, or ``state_dict`` is not an
            MP3D FPN's (see :func:`check_mp3d_fpn_state_dict`).
    """
    num_slices = check_num_slices(num_slices, owner='convert_pretrained_state_dict')
    backbone, depths = check_mp3d_fpn_state_dict(state_dict, source)
    fc_cls = state_dict.get(DROPPED_PREFIXES[0] + 'weight')
    report = ConversionReport(
        backbone=backbone, source_num_slices=depths, num_slices=num_slices,
        num_classes=int(fc_cls.shape[0]) - 1 if fc_cls is not None else None)
    adapted_dict, adapted = adapt_gtm_weights(state_dict, num_slices, GTM_PREFIX)
    report.adapted = adapted
    adapted_keys = {key for key, _, _ in adapted}
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in adapted_dict.items():
        if key.startswith(DROPPED_PREFIXES):
            report.dropped.append((key, tuple(state_dict[key].shape)))
            continue
        out[key] = value
        if key not in adapted_keys:
            report.carried.append((key, tuple(value.shape)))
    return out, report


def convert_pretrained_checkpoint(src: str, dst: str, num_slices: int = 9) -> ConversionReport:
    """Convert the pre-training checkpoint ``src`` and write the result to ``dst``.

    Args:
        src: mmengine checkpoint of the COCO pre-training (an MP3D FPN detector).
        dst: output file; its folder is created. Must not be ``src`` (compared after
            resolving links) nor an existing file other than a converted checkpoint
            (:func:`check_converter_destination`); written whole or not at all (a temporary
            file renamed into place).
        num_slices: slice count ``N`` of the target detector.

    Returns:
        The :class:`ConversionReport`.

    The output is ``{'meta': ..., 'state_dict': ...}``, loadable with ``load_from`` /
    ``mmengine.runner.load_checkpoint`` and ``torch.load(weights_only=True)``; ``meta``
    holds ``conversion`` (source path, backbone, slice counts, the GTM rule, the adapted
    and dropped keys) and ``pretraining`` (the source's epoch, iteration and classes when
    its meta has them).
    """
    check_converter_destination(dst, src)
    state_dict, src_meta = load_state_dict_file(src, 'pre-training checkpoint')
    new_state_dict, report = convert_pretrained_state_dict(state_dict, num_slices, src)
    pretraining = {k: src_meta[k] for k in ('epoch', 'iter') if k in src_meta}
    classes = (src_meta.get('dataset_meta') or {}).get('classes')
    if classes is not None:
        pretraining['classes'] = [str(c) for c in classes]
    meta = dict(
        conversion=dict(
            tool='mp3d-convert-pretraining-checkpoint', source=str(src), backbone=report.backbone,
            source_num_slices=report.source_num_slices, num_slices=report.num_slices,
            source_num_classes=report.num_classes, gtm_rule=GTM_RULE,
            adapted=[k for k, _, _ in report.adapted],
            dropped=[k for k, _ in report.dropped]),
        pretraining=pretraining)
    save_converted_checkpoint(dst, new_state_dict, meta)
    return report


def save_converted_checkpoint(dst: str, state_dict: Mapping[str, Tensor],
                              meta: Dict[str, Any]) -> None:
    """Write ``{'meta': meta, 'state_dict': state_dict}`` to ``dst`` (its folder created),
    whole or not at all (a temporary file renamed into place); loadable with ``load_from``
    and ``torch.load(weights_only=True)``."""
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    with atomic_write(dst, 'wb') as handle:
        torch.save(dict(meta=meta, state_dict=state_dict), handle)


def _is_converted_checkpoint(path: str) -> bool:
    """Whether ``path`` holds a checkpoint a converter of this package wrote: a dict whose
    ``meta['conversion']['tool']`` names one of the ``mp3d-convert-*`` commands."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # not a checkpoint at all (torch raises several types)
        return False
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    conversion = meta.get('conversion') if isinstance(meta, dict) else None
    tool = conversion.get('tool') if isinstance(conversion, dict) else None
    return isinstance(tool, str) and tool.startswith('mp3d-convert-')


def check_converter_destination(dst: str, src: str) -> None:
    """The converters' output rule (:func:`~mp3d_mmdet.utils.safe_files.check_replaceable`):
    ``dst`` is not a folder, not ``src``, and replaces only a checkpoint a converter wrote.

    Raises:
        ValueError: one line naming ``dst``.
    """
    check_output_path(dst, 'destination', 'file')
    check_replaceable(dst, [src], 'destination', recognise=_is_converted_checkpoint,
                      tool='a checkpoint converter')

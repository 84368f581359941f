"""From a checkpoint of the official MP3D code to this plugin's MP3D FPN layout.

The authors' code (urmagicsmine/MP3D, an mmdetection 2.x fork) names the backbone's weights
differently; its FPN, RPN and RoI head are mmdet's and keep their names. What
:func:`convert_official_state_dict` does to every tensor:

* **renamed** -- the backbone (official ``modified_P3D``, the same network as
  :class:`~mp3d_mmdet.models.backbones.MP3DResNet` with ``depth=50``):
  ``conv1_custom`` -> ``conv1`` (the stem), and in every block ``layerS.B``
  ``conv1``/``norm_1`` -> ``conv1``/``norm1`` (``1x1x1``), ``conv2``/``norm_2`` ->
  ``conv_s``/``norm_s`` (the ``1x3x3`` S conv), ``conv3``/``norm_3`` -> ``conv_t``/``norm_t``
  (the ``3x1x1`` T conv), ``conv4``/``norm_4`` -> ``conv3``/``norm3`` (expansion),
  ``downsample.*`` unchanged; the GTM ``backbone.groupconv_<i>`` (part of the official
  backbone) -> ``neck.0.convs.<i - 1>`` (the plugin's
  :class:`~mp3d_mmdet.models.necks.GroupTransform`, the first element of the neck list;
  same ``(C, D, 1, 1)`` weights); the FPN ``neck.*`` -> ``neck.1.*``;
* **carried** unchanged -- ``rpn_head.*`` and ``roi_head.*``;
* **adapted** -- with ``num_slices`` different from the file's GTM slice count, the GTM
  weights are moved to ``num_slices`` slices by the plugin's one rule
  (:func:`~mp3d_mmdet.models.necks.adapt_gtm_weights`: linear resampling along the slice axis
  with aligned ends, scaled by ``D_old / D_new`` so that a stack of identical slices keeps
  its response); the same count leaves them unchanged;
* **dropped** -- with ``num_classes`` different from the file's classes, the class-specific
  RoI classifier and box regressor (``roi_head.bbox_head.fc_cls/fc_reg``); the target
  detector initialises its own.

Accepted inputs: an mmdet 2.x checkpoint (``{'meta', 'state_dict', 'optimizer'}``) or a bare
state dict; keys with or without a leading ``module.`` (DataParallel); the whole detector or
only the backbone (``backbone.``-prefixed, or the backbone's own keys without the prefix, as
the official backbone loads its pre-trained file). Anything else is refused with one line
naming what is missing (:func:`check_official_state_dict`).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

from torch import Tensor

from ..models.necks.group_transform import adapt_gtm_weights
from ..utils.checkpoint_files import load_state_dict_file, strip_module_prefix
from ..utils.validation import check_num_slices
from .pretraining import (DROPPED_PREFIXES, GTM_PREFIX, GTM_RULE, ConversionReport,
                          check_converter_destination, save_converted_checkpoint)

__all__ = [
    'OFFICIAL_BLOCK_RENAMES', 'check_official_state_dict', 'convert_official_state_dict',
    'convert_official_checkpoint'
]

#: Official block sub-module -> the plugin's ``P3DBottleneck`` sub-module.
OFFICIAL_BLOCK_RENAMES: Dict[str, str] = {
    'conv1': 'conv1', 'norm_1': 'norm1', 'conv2': 'conv_s', 'norm_2': 'norm_s',
    'conv3': 'conv_t', 'norm_3': 'norm_t', 'conv4': 'conv3', 'norm_4': 'norm3',
    'downsample': 'downsample'
}
#: The official GTM levels (``backbone.groupconv_1`` ... ``_4``).
NUM_GTM_LEVELS = 4

_BLOCK_KEY = re.compile(r'^backbone\.(layer[1-4]\.\d+)\.([a-z_0-9]+)\.(.+)$')
_GTM_KEY = re.compile(r'^backbone\.groupconv_([1-9])\.weight$')
_BACKBONE_STEM = ('backbone.conv1_custom.', 'backbone.norm1.')


def _canonical_keys(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Strip a ``module.`` prefix and add ``backbone.`` to a bare backbone's keys."""
    stripped = strip_module_prefix(state_dict)
    if any(k.startswith('backbone.') for k in stripped):
        return OrderedDict(stripped)
    return OrderedDict(('backbone.' + k, v) for k, v in stripped.items())


def check_official_state_dict(state_dict: Mapping[str, Tensor],
                              source: str = 'checkpoint') -> Tuple[List[int], Optional[int]]:
    """Check that ``state_dict`` (canonical keys: ``backbone.``-prefixed, no ``module.``) is
    an official MP3D checkpoint's; return its GTM slice counts and classes.

    Args:
        state_dict: the official weights.
        source: name used in error messages (e.g. the file path).

    Returns:
        ``(depths, num_classes)``: the slice count ``D_i`` of every GTM level, and the classes
        of the RoI classifier (``fc_cls`` rows minus the background row) or None without it.

    Raises:
        ValueError: (one line, naming ``source`` and what is missing) no official stem
            ``backbone.conv1_custom.weight``; not the four GTM weights
            ``backbone.groupconv_<i>.weight`` of shape ``(C, D, 1, 1)``; a backbone key
            that is not part of the official MP3D-63.
    """
    stem = state_dict.get('backbone.conv1_custom.weight')
    if stem is None:
        plugin = 'backbone.conv1.weight' in state_dict and any(
            k.startswith('neck.0.convs.') for k in state_dict)
        hint = (' (this is already the plugin\'s layout: use it directly, or '
                'mp3d-convert-pretraining-checkpoint to change its slice count)' if plugin
                else '')
        raise ValueError(f'{source}: no backbone.conv1_custom.weight (the official MP3D stem): '
                         f'not an official MP3D checkpoint{hint}')
    if stem.dim() != 5 or stem.shape[1] != 1:
        raise ValueError(f'{source}: backbone.conv1_custom.weight is {tuple(stem.shape)}, '
                         'expected the official (64, 1, 1, 7, 7) stem')
    depths = []
    for level in range(1, NUM_GTM_LEVELS + 1):
        key = f'backbone.groupconv_{level}.weight'
        weight = state_dict.get(key)
        if weight is None:
            raise ValueError(f'{source}: no {key} (the official GTM, level {level} of '
                             f'{NUM_GTM_LEVELS}): not an official MP3D FPN checkpoint')
        if weight.dim() != 4 or tuple(weight.shape[2:]) != (1, 1):
            raise ValueError(f'{source}: {key} is {tuple(weight.shape)}, expected '
                             '(C, D, 1, 1)')
        depths.append(int(weight.shape[1]))
    for key in state_dict:
        if not key.startswith('backbone.') or key.startswith(_BACKBONE_STEM) or \
                _GTM_KEY.match(key):
            continue
        match = _BLOCK_KEY.match(key)
        if match is None or match.group(2) not in OFFICIAL_BLOCK_RENAMES:
            raise ValueError(f'{source}: {key} is not a weight of the official MP3D-63 '
                             'backbone')
    fc_cls = state_dict.get(DROPPED_PREFIXES[0] + 'weight')
    return depths, (int(fc_cls.shape[0]) - 1 if fc_cls is not None else None)


def _plugin_key(key: str) -> str:
    """The plugin's name of an official key (canonical form)."""
    if key.startswith('backbone.conv1_custom.'):
        return 'backbone.conv1.' + key[len('backbone.conv1_custom.'):]
    gtm = _GTM_KEY.match(key)
    if gtm:
        return f'{GTM_PREFIX}convs.{int(gtm.group(1)) - 1}.weight'
    block = _BLOCK_KEY.match(key)
    if block:
        layer, module, rest = block.groups()
        return f'backbone.{layer}.{OFFICIAL_BLOCK_RENAMES[module]}.{rest}'
    if key.startswith('neck.'):
        return 'neck.1.' + key[len('neck.'):]
    return key


def convert_official_state_dict(
        state_dict: Mapping[str, Tensor],
        num_slices: Optional[int] = None,
        num_classes: Optional[int] = None,
        source: str = 'checkpoint') -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Convert official MP3D weights to the plugin's MP3D FPN layout.

    Args:
        state_dict: the official weights (see the module docstring for the accepted forms).
        num_slices: slice count ``N`` of the target detector (odd, >= 1); None keeps the
            file's.
        num_classes: classes of the target detector; None keeps the file's. When it differs,
            ``fc_cls`` and ``fc_reg`` are dropped.
        source: name used in error messages.

    Returns:
        ``(new_state_dict, report)``: the plugin-layout tensors (the input's tensors; the
        adapted GTM weights new ones of the same dtype) and what was done to each key
        (``report.renamed`` holds ``(official key, plugin key, shape)``; a renamed GTM
        weight that is also adapted is listed under ``report.adapted`` only).

    Raises:
        ValueError: not an official MP3D checkpoint (:func:`check_official_state_dict`), the
            GTM levels do not share one slice count, or ``num_slices`` / ``num_classes`` is
            not valid.
    """
    canonical = _canonical_keys(state_dict)
    depths, source_classes = check_official_state_dict(canonical, source)
    if len(set(depths)) != 1:
        raise ValueError(f'{source}: the GTM levels have different slice counts {depths} '
                         '(an isotropic model): convert it with num_slices left as it is')
    target_slices = depths[0] if num_slices is None else check_num_slices(
        num_slices, owner='convert_official_state_dict')
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f'num_classes must be an int >= 1, got {num_classes!r}')
    drop_classes = (num_classes is not None and source_classes is not None
                    and num_classes != source_classes)
    report = ConversionReport(backbone='MP3D', source_num_slices=depths,
                              num_slices=target_slices, num_classes=source_classes)
    renamed: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in canonical.items():
        new_key = _plugin_key(key)
        if drop_classes and new_key.startswith(DROPPED_PREFIXES):
            report.dropped.append((key, tuple(value.shape)))
            continue
        renamed[new_key] = value
        if new_key != key:
            report.renamed.append((key, new_key, tuple(value.shape)))
    out, adapted = adapt_gtm_weights(renamed, target_slices, GTM_PREFIX)
    report.adapted = adapted
    adapted_keys = {key for key, _, _ in adapted}
    report.renamed = [r for r in report.renamed if r[1] not in adapted_keys]
    renamed_keys = {new for _, new, _ in report.renamed}
    report.carried = [(k, tuple(v.shape)) for k, v in out.items()
                      if k not in adapted_keys and k not in renamed_keys]
    return OrderedDict(out), report


def convert_official_checkpoint(src: str, dst: str, num_slices: Optional[int] = None,
                                num_classes: Optional[int] = None) -> ConversionReport:
    """Convert the official MP3D checkpoint ``src`` and write the result to ``dst``.

    Args:
        src: official checkpoint (e.g. the authors' ``mp3d63-d720bda1.pth``).
        dst: output file; its folder is created. Must not be ``src`` (compared after
            resolving links) nor an existing file other than a converted checkpoint
            (:func:`~.pretraining.check_converter_destination`); written whole or not at all.
        num_slices: slice count of the target detector (None: the file's).
        num_classes: classes of the target detector (None: the file's).

    Returns:
        The :class:`~mp3d_mmdet.converters.ConversionReport`.

    The output is ``{'meta': {'conversion': ...}, 'state_dict': ...}``, loadable with
    ``load_from`` and ``torch.load(weights_only=True)``.
    """
    check_converter_destination(dst, src)
    state_dict, _ = load_state_dict_file(src, 'official MP3D checkpoint')
    new_state_dict, report = convert_official_state_dict(state_dict, num_slices, num_classes,
                                                         src)
    meta = dict(conversion=dict(
        tool='mp3d-convert-official-checkpoint', source=str(src),
        source_num_slices=report.source_num_slices, num_slices=report.num_slices,
        source_num_classes=report.num_classes, gtm_rule=GTM_RULE,
        renamed=len(report.renamed), adapted=[k for k, _, _ in report.adapted],
        dropped=[k for k, _ in report.dropped]))
    save_converted_checkpoint(dst, new_state_dict, meta)
    return report

"""Checkpoint conversion: the importable API behind ``tools/model_converters/``.

* :mod:`.resnet2d_inflation` -- 2D ResNet weights inflated into MP3D / MR3D backbones
  (also usable as the backbone's ``init_cfg=dict(type='Inflated2DPretrained', ...)``);
* :mod:`.pretraining` -- a COCO 3-slice pre-training detector turned into the
  initialisation of an N-slice lesion detector (GTM slice count adapted, the class-specific
  RoI layers dropped);
* :mod:`.official_mp3d` -- a checkpoint of the official MP3D code (the authors' weights)
  renamed into this plugin's layout (GTM adapted and RoI layers dropped on request).

Moving GTM weights between slice counts is one rule,
:func:`mp3d_mmdet.models.necks.adapt_gtm_weights`, which the ``GroupTransform`` loader
applies too.
"""
from .official_mp3d import (check_official_state_dict, convert_official_checkpoint,
                            convert_official_state_dict)
from .pretraining import (ConversionReport, check_mp3d_fpn_state_dict,
                          convert_pretrained_checkpoint, convert_pretrained_state_dict)
from .resnet2d_inflation import (Inflated2DPretrained, canonical_resnet2d_keys,
                                 inflate_2d_state_dict)

__all__ = [
    'ConversionReport', 'check_mp3d_fpn_state_dict', 'convert_pretrained_state_dict',
    'convert_pretrained_checkpoint', 'Inflated2DPretrained', 'canonical_resnet2d_keys',
    'inflate_2d_state_dict', 'check_official_state_dict', 'convert_official_state_dict',
    'convert_official_checkpoint'
]

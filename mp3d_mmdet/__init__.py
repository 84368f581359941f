"""mp3d_mmdet: MP3D FPN (MICCAI 2020) for universal lesion detection, as an MMDetection 3.x plugin.

``import mp3d_mmdet`` (or ``custom_imports = dict(imports=['mp3d_mmdet'])`` in a config)
registers every component into mmdet's registries: the backbones and neck adapters in
``MODELS``, the 2D-inflation initializer in ``WEIGHT_INITIALIZERS``, the DeepLesion dataset
in ``DATASETS``, the slice-loading transforms in ``TRANSFORMS``, the FROC metric in
``METRICS``, the training-loop hooks in ``HOOKS`` and the device-aware runner in
``RUNNERS``. It also allow-lists the few classes that mmengine checkpoints pickle, so that
``torch.load(weights_only=True)`` (the default from torch 2.6) can resume runs and load
checkpoints for ``mim test`` (see :mod:`mp3d_mmdet.utils.checkpoint_compat`).
"""
from .version import __version__
from .utils import *  # noqa: F401,F403  (checkpoint allow-list first)
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .converters import *  # noqa: F401,F403
from .datasets import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403

__all__ = ['__version__']

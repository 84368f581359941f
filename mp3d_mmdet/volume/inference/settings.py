"""What the network reads of a CT volume: the config's test pipeline and the in-plane rule.

**One source of truth for the input.** The config's test pipeline
(``cfg.test_dataloader.dataset.pipeline``) is read once: its first transform must be
``LoadCTSlices``, whose ``num_slices``, ``slice_interval``, ``hu_window`` and ``out_range``
(built through the registry, so its own defaults and checks apply) define the N-slice input.
For axial slice ``z`` the input is
:func:`mp3d_mmdet.datasets.slice_sampling.sample_slices_from_volume` -- the same
plan/assembly functions ``LoadCTSlices`` calls on DeepLesion PNGs: neighbours every
``slice_interval`` mm linearly interpolated along z from the volume's real spacing, slices
beyond the volume ends replaced by the first/last slice (edge replication; the number of
slices affected is recorded), HU clipped to the window and scaled. The rest of the config's
test pipeline (``SliceWiseResize``, ``PackDetInputs``, ...) then runs unchanged through the
registered transforms, and the model's ``test_step`` (data preprocessor + predict with
``rescale=True``) returns boxes in the slice's own pixel grid.

**In-plane pixel spacing rule.** The paper's model has no fixed in-plane spacing: DeepLesion
slices (512 px, 0.6-1 mm/px) are resized to the test scale (512) whatever their spacing, so the
model sees ``field of view / 512`` mm per pixel. Hence, by default, nothing is resampled
beyond the config's ``Resize``. Two exceptions replace the ``Resize`` entry (its other
arguments, e.g. the interpolation, are kept):

* a target spacing ``pixel_spacing`` (argument, ``--pixel-spacing``, or the config key
  ``volume_inference = dict(pixel_spacing=...)``): the slice is resized to
  ``(round(W * sx / t), round(H * sy / t))`` so that the model sees ``t`` mm/px (the config's
  test scale is then ignored);
* non-square pixels (``sx`` and ``sy`` differ by more than 1 %) without a target: the slice is
  resized to square pixels at ``min(sx, sy)`` and then to the config's test scale with the
  config's own rule (``mmcv.rescale_size``), in one resize.

The resize is the config's test ``Resize`` (mmdet's ``Resize`` or ``SliceWiseResize``;
``SliceWiseResize`` when the config has none) on the windowed N-channel image, exactly where
training resizes, and ``scale_factor`` maps the boxes back. The chosen rule and the effective
mm/px are recorded in the outputs.
"""
import copy
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from mmcv.image import rescale_size
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.utils import get_test_pipeline_cfg

from ...datasets.transforms.slice_wise_resize import SliceWiseResize
from ...utils.config import ConfigError, load_config, type_name

__all__ = ['InferenceSetupError', 'SliceInputSettings', 'load_inference_config',
           'slice_input_settings', 'plan_in_plane_resize', 'test_pipeline_cfg',
           'is_resize_transform']

_ANISOTROPY_TOL = 0.01
_MAX_RESIZED_SIDE = 4096


class InferenceSetupError(ValueError):
    """The config, checkpoint or device cannot be used; the message is one line."""


def load_inference_config(config: Union[str, Config],
                          cfg_options: Optional[Dict[str, Any]] = None) -> Config:
    """Read a config as training read it (:func:`mp3d_mmdet.utils.config.load_config`: its
    ``custom_imports`` imported, ``cfg_options`` merged, the slice-input settings resolved).

    Args:
        config: a config file, or a ``Config`` (not changed).
        cfg_options: ``--cfg-options`` style overrides.

    Raises:
        InferenceSetupError: the file is missing, not a valid config, or inconsistent.
    """
    if isinstance(config, str) and not osp.isfile(config):
        raise InferenceSetupError(f'config file not found: {config}')
    try:
        return load_config(config, cfg_options)
    except ConfigError as error:
        raise InferenceSetupError(f'{config}: {error}') from None
    except Exception as error:  # mmengine raises many types for broken configs
        message = str(error).strip().splitlines()
        raise InferenceSetupError(f'cannot load config {config}: {type(error).__name__}: '
                                  f"{message[-1] if message else ''}") from None


def test_pipeline_cfg(cfg: Config) -> List[dict]:
    try:  # mmdet's lookup, through dataset wrappers
        pipeline = copy.deepcopy(list(get_test_pipeline_cfg(cfg)))
    except (AttributeError, KeyError, IndexError, TypeError, RuntimeError):
        raise InferenceSetupError('the config has no test_dataloader.dataset.pipeline') from None
    if not pipeline or type_name(pipeline[0]) != 'LoadCTSlices':
        first = pipeline[0].get('type') if pipeline else None
        raise InferenceSetupError('the first transform of the config\'s test pipeline must be '
                                  f'LoadCTSlices (the N-slice input), got {first!r}')
    return pipeline


@dataclass(frozen=True)
class SliceInputSettings:
    """The N-slice input of a model, read from its config's ``LoadCTSlices`` entry.

    Attributes:
        num_slices: ``N`` (odd), key slice in channel ``N // 2``.
        slice_interval: mm between channels.
        hu_window: HU clip window.
        out_range: values the window is scaled to.
        resize: the config's test ``Resize`` entry (the first transform that builds
            mmdet's ``Resize`` or ``SliceWiseResize``; None if it has none).
    """
    num_slices: int
    slice_interval: float
    hu_window: Tuple[float, float]
    out_range: Tuple[float, float]
    resize: Optional[Dict[str, Any]]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict of the fields (``resize`` with tuples as lists)."""
        resize = None if self.resize is None else {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.resize.items()}
        return dict(num_slices=self.num_slices, slice_interval_mm=self.slice_interval,
                    hu_window=list(self.hu_window), out_range=list(self.out_range),
                    test_resize=resize)


def is_resize_transform(transform: dict) -> bool:
    """Whether a transform config builds mmdet's ``Resize`` or ``SliceWiseResize``.

    (Not other ``Resize`` subclasses such as ``FixShapeResize``, whose arguments differ.)
    """
    from mmdet.datasets.transforms import Resize
    from mmdet.registry import TRANSFORMS
    kind = transform.get('type')
    cls = kind if isinstance(kind, type) else TRANSFORMS.get(str(kind))
    return cls is Resize or (isinstance(cls, type) and issubclass(cls, SliceWiseResize))


def slice_input_settings(cfg: Config) -> SliceInputSettings:
    """Read the N-slice input settings from ``cfg``'s test pipeline (see the module doc).

    Raises:
        InferenceSetupError: no test pipeline, or its first transform is not LoadCTSlices, or
            the LoadCTSlices arguments are invalid.
    """
    from mmdet.registry import TRANSFORMS
    pipeline = test_pipeline_cfg(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    try:
        loader = TRANSFORMS.build(pipeline[0])
    except (ValueError, TypeError) as error:
        raise InferenceSetupError(f'invalid LoadCTSlices in the test pipeline: {error}') from None
    resizes = [t for t in pipeline[1:] if is_resize_transform(t)]
    resize = None
    if resizes:
        resize = {k: tuple(v) if isinstance(v, list) else v for k, v in resizes[0].items()}
    return SliceInputSettings(int(loader.num_slices), float(loader.slice_interval),
                              tuple(loader.hu_window), tuple(loader.out_range), resize)


def plan_in_plane_resize(resize_cfg: Optional[Dict[str, Any]], slice_shape: Tuple[int, int],
                         spacing_xy: Tuple[float, float],
                         target_spacing: Optional[float] = None
                         ) -> Tuple[Optional[Dict[str, Any]], Tuple[int, int], str]:
    """Choose the Resize of one volume's slices (rule: module docstring).

    Args:
        resize_cfg: the config's test Resize entry.
        slice_shape: ``(H, W)`` of the volume's slices.
        spacing_xy: ``(sx, sy)`` mm.
        target_spacing: wanted mm/px, None = the default rule.

    Returns:
        ``(resize transform config or None, (out_w, out_h) model input size before
        padding, one-line description of the rule applied)``.
    """
    height, width = slice_shape
    sx, sy = float(spacing_xy[0]), float(spacing_xy[1])
    base = {k: v for k, v in (resize_cfg or {'type': 'SliceWiseResize'}).items()
            if k not in ('scale', 'scale_factor', 'keep_ratio')}
    scale = resize_cfg.get('scale') if resize_cfg is not None else None
    if scale is not None:
        scale = tuple(scale) if isinstance(scale, (list, tuple)) else (scale, scale)
    keep_ratio = resize_cfg is not None and resize_cfg.get('keep_ratio', False)
    if target_spacing is not None:
        if not np.isfinite(target_spacing) or target_spacing <= 0:
            raise InferenceSetupError(f'pixel_spacing must be > 0 mm, got {target_spacing!r}')
        size = (int(round(width * sx / target_spacing)), int(round(height * sy / target_spacing)))
        rule = (f'resampled in-plane to the target {target_spacing:g} mm/px '
                f'({width}x{height} px at {sx:.4g}x{sy:.4g} mm -> {size[0]}x{size[1]} px)')
    elif abs(sx - sy) <= _ANISOTROPY_TOL * min(sx, sy):
        if resize_cfg is None:
            return None, (width, height), 'no resize (the test pipeline has no Resize)'
        if scale is not None:
            size = rescale_size((width, height), scale) if keep_ratio else scale
        else:
            size = rescale_size((width, height), float(resize_cfg['scale_factor']))
        return dict(resize_cfg), tuple(int(s) for s in size), (
            f'config test Resize {dict(resize_cfg)} ({width}x{height} px at {sx:.4g} mm -> '
            f'{size[0]}x{size[1]} px)')
    else:
        iso = min(sx, sy)
        square = (width * sx / iso, height * sy / iso)
        if resize_cfg is None:
            size = square
        elif scale is not None and keep_ratio:
            _, factor = rescale_size(square, scale, return_scale=True)
            size = (square[0] * factor, square[1] * factor)
        elif scale is not None:
            size = scale
        else:
            factor = float(resize_cfg['scale_factor'])
            size = (square[0] * factor, square[1] * factor)
        size = (int(round(size[0])), int(round(size[1])))
        rule = (f'non-square pixels {sx:.4g}x{sy:.4g} mm: resized to square pixels and the '
                f'config test scale ({width}x{height} -> {size[0]}x{size[1]} px)')
    if min(size) < 8 or max(size) > _MAX_RESIZED_SIDE:
        raise InferenceSetupError(f'in-plane resampling would make {size[0]}x{size[1]} px '
                                  f'slices (limits 8..{_MAX_RESIZED_SIDE}); check the pixel '
                                  'spacing')
    return dict(base, scale=size, keep_ratio=False), size, rule

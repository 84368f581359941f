"""Where ``FROCMetric`` finds the ground truth of a data sample, and which test pipelines give
it in the coordinates the predictions are in (those of the original image).

A data sample carries the ground truth in one of two ways:

* ``instances`` in its metainfo -- the dataset's annotation as read, original image
  coordinates, with DeepLesion's lesion type and size -- when the pipeline's
  ``PackDetInputs`` lists ``'instances'`` in its ``meta_keys`` (the plugin's configs);
* ``gt_instances`` -- the boxes ``LoadAnnotations`` loaded (``ignore_flag`` ones go to
  ``ignored_instances``) -- with mmdet's default ``PackDetInputs``. They are in original
  image coordinates when the pipeline loads the annotations after resizing, as mmdet's own
  test pipelines do. A pipeline that loads them earlier and then resizes (flips, crops ...)
  the image has moved them: :func:`check_froc_pipeline` refuses it rather than guess the
  transforms back, naming the two fixes.

:func:`check_froc_pipeline` applies the rule to a pipeline of config dicts (the plugin's
runner, :func:`mp3d_mmdet.utils.config.check_evaluator_inputs`) or of built transforms (the
dataloader of the val / test loop mmengine builds before training:
:func:`loop_pipelines`).
"""
import inspect
from typing import Any, List, Optional, Sequence, Tuple

from ...utils.config import ConfigError, dataset_pipelines, type_name

__all__ = ['check_froc_pipeline', 'loop_pipelines', 'BOX_KEEPING_TRANSFORMS']

#: Transforms that may follow ``LoadAnnotations`` without moving the boxes it loaded: image
#: loaders and padding at the bottom / right. Any other transform between ``LoadAnnotations``
#: and ``PackDetInputs`` is taken to move them.
BOX_KEEPING_TRANSFORMS = frozenset({'LoadImageFromFile', 'LoadCTSlices', 'RGBToSlices', 'Pad',
                                    'MultiChannelPad', 'LoadAnnotations'})


def _name(transform: Any) -> str:
    return type_name(transform) if isinstance(transform, dict) else type(transform).__name__


def _argument(transform: Any, name: str, default: Any) -> Any:
    """An argument of a transform: a config dict's entry (``default`` where it is left out)
    or a built transform's attribute."""
    if isinstance(transform, dict):
        return transform.get(name, default)
    return getattr(transform, name, default)


def _pack_default_meta_keys() -> Tuple[str, ...]:
    from mmdet.datasets.transforms import PackDetInputs
    return tuple(inspect.signature(PackDetInputs.__init__).parameters['meta_keys'].default)


def check_froc_pipeline(pipeline: Sequence[Any], where: str) -> Optional[str]:
    """Where a pipeline puts the ground truth ``FROCMetric`` reads, or refuse it.

    Args:
        pipeline: transforms, as config dicts or built objects.
        where: the pipeline's name in messages, e.g. ``'val_dataloader.dataset.pipeline'``.

    Returns:
        ``'instances'`` (the metainfo), ``'gt_instances'`` (boxes loaded after every
        transform that moves them), or None for a pipeline without ``PackDetInputs`` (not
        checked: reading a data sample names what it lacks).

    Raises:
        ConfigError: ``PackDetInputs`` does not pack ``img_id``; or the pipeline neither packs
            ``instances`` nor loads boxes; or it loads them before a transform that moves
            them. The message names the transforms and the fix.
    """
    names = [_name(t) for t in pipeline]
    if 'PackDetInputs' not in names:
        return None
    pack = len(names) - 1 - names[::-1].index('PackDetInputs')
    meta_keys = _argument(pipeline[pack], 'meta_keys', None)
    meta_keys = tuple(_pack_default_meta_keys() if meta_keys is None else meta_keys)
    packer = f'{where}[{pack}] (PackDetInputs)'
    if 'img_id' not in meta_keys:
        raise ConfigError(f"FROCMetric names every image by its img_id, but {packer} does not "
                          "pack it: add 'img_id' to its meta_keys")
    if 'instances' in meta_keys:
        return 'instances'
    loads: List[int] = [i for i, (name, t) in enumerate(zip(names[:pack], pipeline))
                        if name == 'LoadAnnotations' and _argument(t, 'with_bbox', True)]
    if not loads:
        raise ConfigError(
            f"FROCMetric needs the ground truth, but {where} neither loads boxes "
            f"(LoadAnnotations) nor packs 'instances': add dict(type='LoadAnnotations', "
            f"with_bbox=True) after the resize, or 'instances' to the meta_keys of {packer}")
    moving = [i for i in range(loads[-1] + 1, pack) if names[i] not in BOX_KEEPING_TRANSFORMS]
    if moving:
        raise ConfigError(
            f'FROCMetric compares the predictions (original image coordinates) with the boxes '
            f'LoadAnnotations loads at {where}[{loads[-1]}], but {where}[{moving[0]}] '
            f'({names[moving[0]]}) comes after it and moves them: load the annotations after '
            f"it, as mmdet's test pipelines do, or add 'instances' to the meta_keys of {packer}")
    return 'gt_instances'


def loop_pipelines(max_frames: int = 8) -> List[Tuple[str, list]]:
    """``(path, built transforms)`` of the dataloader of the mmengine loop being built.

    mmengine's ``ValLoop`` / ``TestLoop`` build their dataloader, then set the evaluator's
    ``dataset_meta`` -- before the first training (or test) iteration. Called from there,
    this finds that loop among the callers (the nearest ``max_frames``) and returns its
    dataset's pipelines, named ``val_dataloader.dataset.pipeline`` etc.; none when
    ``dataset_meta`` is set elsewhere (e.g. by hand).
    """
    from mmengine.runner import BaseLoop, TestLoop, ValLoop
    frame = inspect.currentframe()
    try:
        for _ in range(max_frames):
            frame = frame.f_back if frame is not None else None
            loop = frame.f_locals.get('self') if frame is not None else None
            if isinstance(loop, BaseLoop) and hasattr(loop, 'dataloader'):
                split = ('val' if isinstance(loop, ValLoop) else
                         'test' if isinstance(loop, TestLoop) else type(loop).__name__)
                return list(dataset_pipelines(loop.dataloader.dataset,
                                              f'{split}_dataloader.dataset'))
        return []
    finally:
        del frame

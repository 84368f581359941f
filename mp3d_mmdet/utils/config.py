"""How the plugin reads a config: one owner for each setting several parts must share, and
the checks that would otherwise fail only after a training epoch.

**The N-slice input.** The slice count appears in the loader of every dataloader, the
backbone and the neck adapter; the slice interval and HU window in every loader. A config
sets each at its top level, and the places follow it (:func:`resolve_config`):

==================  =========================================================================
top-level key       places that take it
==================  =========================================================================
``num_slices``      ``model.backbone.num_slices`` (backbones that take it: MP3D, MR3D, 3DCE);
                    the neck adapter (``GroupTransform`` / ``CenterSliceTransform``) gets the
                    backbone's output depths, computed from it
                    (:func:`~mp3d_mmdet.utils.slice_depths.slice_depths`: ``[5, 3, 2, 1]`` for
                    9 slices with isotropic slice pooling); every ``LoadCTSlices``
``slice_interval``  every ``LoadCTSlices``
``hu_window``       every ``LoadCTSlices``
==================  =========================================================================

The ``LoadCTSlices`` places are those of ``train_dataloader``, ``val_dataloader`` and
``test_dataloader`` (through dataset wrappers) and of the top-level ``*_pipeline`` lists.

The configs in ``configs/`` write every place out, with the top-level value (so that
mmdet's own entry points -- ``init_detector``, ``Runner.from_cfg``, the analysis tools --
build the same model; ``tests/test_configs`` checks that resolving them changes nothing).
For a key set at the top level:

* a place that leaves the key out takes the top-level value;
* when every place is written out and all of them hold the same other value, the config is
  such a written-out config whose top-level value a child config or ``--cfg-options``
  changed: every place follows the new value (and the neck adapter the new depths);
* any other place that disagrees is refused: :class:`ConfigError` names both (e.g.
  ``num_slices = 13 (top level) but test_dataloader.dataset.pipeline[0].num_slices = 9``),
  before the first training iteration.

A config without the top-level key (e.g. another project's) is checked the same way: all
places, with the modules' defaults where a place leaves a value out, must agree.

**Evaluators.** A metric class with a ``check_pipeline(pipeline, where)`` class method
(``FROCMetric``) states what it needs from the data samples its dataloader packs:
:func:`check_evaluator_inputs` runs it on the val / test pipelines.

The runner (:class:`~mp3d_mmdet.engine.DeviceAwareRunner`) applies both before it builds
anything; tools that build models from configs go through :func:`load_config`.
"""
import ast
import copy
import inspect
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from mmengine.config import Config

from .slice_depths import slice_depths

__all__ = ['ConfigError', 'SLICE_INPUT_KEYS', 'load_config', 'resolve_config',
           'check_evaluator_inputs', 'slice_input_places', 'parse_config_text', 'type_name',
           'config_pipelines', 'leaf_datasets', 'dataset_pipelines']

#: Top-level keys owned by :func:`resolve_config`.
SLICE_INPUT_KEYS = ('num_slices', 'slice_interval', 'hu_window')
_LOADER = 'LoadCTSlices'
_ADAPTERS = ('GroupTransform', 'CenterSliceTransform')
_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_UNSET = inspect.Parameter.empty

Place = Tuple[str, dict, str]  # (path as named in messages, owning dict, argument name)


class ConfigError(ValueError):
    """A config whose parts disagree or lack what a component needs; one line naming them."""


def type_name(entry: Any) -> str:
    """The registered class name a config entry builds: ``'LoadCTSlices'`` for
    ``dict(type='LoadCTSlices')``, ``dict(type='mmdet.LoadCTSlices')`` or
    ``dict(type=LoadCTSlices)``; ``'None'`` for an entry without a type."""
    kind = entry.get('type') if isinstance(entry, dict) else None
    return kind.__name__ if isinstance(kind, type) else str(kind).split('.')[-1]


def config_pipelines(cfg: Config) -> Iterator[Tuple[str, list]]:
    """``(path, pipeline list)`` of every pipeline a config holds: the top-level
    ``*_pipeline`` lists and those of the train / val / test datasets (through wrappers)."""
    for key in cfg.keys():
        if key.endswith('_pipeline') and isinstance(cfg[key], list):
            yield key, cfg[key]
    for name in _DATALOADERS:
        loader = cfg.get(name)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            yield from dataset_pipelines(loader['dataset'], f'{name}.dataset')


def leaf_datasets(dataset: dict, path: str = 'dataset') -> Iterator[Tuple[str, dict]]:
    """``(path, dataset dict)`` of each dataset that reads data, under a dataloader's
    ``dataset`` entry: wrappers (``RepeatDataset``, ``ClassBalancedDataset``:
    ``dataset``; ``ConcatDataset``: ``datasets``) are walked into, not returned."""
    if isinstance(dataset.get('dataset'), dict):
        yield from leaf_datasets(dataset['dataset'], f'{path}.dataset')
    elif isinstance(dataset.get('datasets'), list):
        for i, inner in enumerate(dataset['datasets']):
            if isinstance(inner, dict):
                yield from leaf_datasets(inner, f'{path}.datasets[{i}]')
    else:
        yield path, dataset


def _member(dataset: Any, key: str) -> Any:
    return dataset.get(key) if isinstance(dataset, dict) else getattr(dataset, key, None)


def _is_dataset(entry: Any) -> bool:
    """A dataset config dict, or a built dataset (it has a pipeline or wraps datasets)."""
    return isinstance(entry, dict) or any(
        hasattr(entry, key) for key in ('pipeline', 'dataset', 'datasets'))


def dataset_pipelines(dataset: Any, path: str = 'dataset') -> Iterator[Tuple[str, list]]:
    """``(path, transforms)`` of every pipeline under a dataset entry: its own (a wrapper's
    too) and those of the datasets it wraps (``dataset``: ``RepeatDataset``,
    ``ClassBalancedDataset`` ...; ``datasets``: ``ConcatDataset``).

    Args:
        dataset: a dataset config dict (transforms are dicts) or a built dataset (transforms
            are the built objects of its ``Compose``).
        path: the entry's name in messages, e.g. ``'val_dataloader.dataset'``.
    """
    pipeline = _member(dataset, 'pipeline')
    transforms = getattr(pipeline, 'transforms', pipeline)  # a built Compose holds a list
    if isinstance(transforms, list):
        yield f'{path}.pipeline', transforms
    inner = _member(dataset, 'dataset')
    if inner is not None and _is_dataset(inner):
        yield from dataset_pipelines(inner, f'{path}.dataset')
    for i, inner in enumerate(_member(dataset, 'datasets') or []):
        if _is_dataset(inner):
            yield from dataset_pipelines(inner, f'{path}.datasets[{i}]')


def _loaders(cfg: Config) -> Iterator[Tuple[str, dict]]:
    for path, pipeline in config_pipelines(cfg):
        for i, transform in enumerate(pipeline):
            if isinstance(transform, dict) and type_name(transform) == _LOADER:
                yield f'{path}[{i}]', transform


def _registered(type_name: str):
    from mmdet.registry import MODELS, TRANSFORMS
    return MODELS.get(type_name) or TRANSFORMS.get(type_name)


def _parameter(type_name: str, argument: str) -> Optional[inspect.Parameter]:
    """The ``__init__`` parameter ``argument`` of a registered class or of a class it
    derives from (for subclasses taking ``**kwargs``, e.g. ``MR3DResNet``)."""
    for cls in getattr(_registered(type_name), '__mro__', ()):
        parameter = inspect.signature(cls.__init__).parameters.get(argument)
        if parameter is not None:
            return parameter
    return None


def _default(type_name: str, argument: str) -> Any:
    """The default of ``argument`` of a registered class (``inspect.Parameter.empty``)."""
    parameter = _parameter(type_name, argument)
    return _UNSET if parameter is None else parameter.default


def _takes(type_name: str, argument: str) -> bool:
    return _parameter(type_name, argument) is not None


def _plain(value: Any) -> Any:
    """Lists for tuples (configs hold either), for comparing values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def slice_input_places(cfg: Config) -> Dict[str, List[Place]]:
    """Where each slice-input setting of ``cfg`` sits.

    Returns:
        ``key -> [(path, owning dict, argument name), ...]`` for every key of
        :data:`SLICE_INPUT_KEYS`; ``num_slices`` lists the backbone and the loaders (the
        adapter's depths are derived, see :func:`resolve_config`).
    """
    places: Dict[str, List[Place]] = {k: [] for k in SLICE_INPUT_KEYS}
    backbone = (cfg.get('model') or {}).get('backbone')
    if isinstance(backbone, dict) and _takes(type_name(backbone), 'num_slices'):
        places['num_slices'].append(('model.backbone.num_slices', backbone, 'num_slices'))
    for path, loader in _loaders(cfg):
        for key in SLICE_INPUT_KEYS:
            places[key].append((f'{path}.{key}', loader, key))
    return places


def _value_at(owner: dict, argument: str, type_name: str) -> Any:
    return owner[argument] if argument in owner else _default(type_name, argument)


def _adapter(cfg: Config) -> Optional[Tuple[str, dict]]:
    neck = (cfg.get('model') or {}).get('neck')
    entries = neck if isinstance(neck, list) else [neck]
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and type_name(entry) in _ADAPTERS:
            return (f'model.neck[{i}]' if isinstance(neck, list) else 'model.neck'), entry
    return None


def _backbone_depths(backbone: dict, num_slices: int, num_levels: int) -> List[int]:
    """Slice-axis size of each backbone output level for ``num_slices`` input slices."""
    pooling = _value_at(backbone, 'slice_pooling', type_name(backbone))
    if pooling is _UNSET:
        pooling = 'none'
    out_indices = _value_at(backbone, 'out_indices', type_name(backbone))
    stages = len(backbone.get('stage_blocks') or ()) or 4
    depths = slice_depths(num_slices, pooling, stages)
    if out_indices in (None, _UNSET):
        out_indices = range(stages)
    return [depths[i] for i in out_indices][:num_levels]


def resolve_config(cfg: Config) -> List[str]:
    """Give every place its slice-input setting, or refuse disagreeing places (module doc).

    Args:
        cfg: a full config; changed in place.

    Returns:
        One line per place filled in or changed (e.g.
        ``'model.backbone.num_slices = 13'``, ``'... = 13 (was 9)'``); empty for a config
        whose places all hold their top-level values already.

    Raises:
        ConfigError: two places (or a place and the top level) disagree.
    """
    filled: List[str] = []
    earlier_num_slices = _UNSET
    for key, places in slice_input_places(cfg).items():
        top = cfg.get(key, _UNSET)
        if top is _UNSET:
            _check_places_agree(key, places)
            continue
        earlier = _follow_top_level(key, top, places, filled)
        if key == 'num_slices':
            earlier_num_slices = earlier
    filled.extend(_resolve_adapter(cfg, earlier_num_slices))
    return filled


def _follow_top_level(key: str, top: Any, places: List[Place], filled: List[str]) -> Any:
    """Set every place of ``key`` to the top-level value ``top`` (module doc); returns the
    value the written-out places held before when they all followed a changed top level,
    else ``inspect.Parameter.empty``."""
    written = [place for place in places if place[2] in place[1]]
    unset = [place for place in places if place[2] not in place[1]]
    odd = [(path, owner[arg]) for path, owner, arg in written
           if _plain(owner[arg]) != _plain(top)]
    earlier = _UNSET
    if odd:
        values = {repr(_plain(owner[arg])) for _, owner, arg in written}
        if len(values) > 1 or unset:
            path, value = odd[0]
            why = (f' ({unset[0][0]} leaves it out, so the places written out count as set '
                   f'by hand: write {key} in every place or in none)'
                   if len(values) == 1 else '')
            raise ConfigError(
                f'{key} = {top!r} (top level) but {path} = {value!r}{why}: the places of '
                f'{key} follow the top level; change it there (e.g. --cfg-options '
                f'{key}=...), not in one place')
        earlier = written[0][1][written[0][2]]
    for path, owner, argument in places:
        if argument not in owner or earlier is not _UNSET:
            was = '' if argument not in owner else f' (was {owner[argument]!r})'
            owner[argument] = copy.deepcopy(top)
            filled.append(f'{path} = {top!r}{was}')
    return earlier


def _check_places_agree(key: str, places: List[Place]) -> None:
    """Without a top-level value, all places (module defaults where left out) must agree."""
    seen: List[Tuple[str, Any]] = []  # (place as named in messages, value)
    for path, owner, argument in places:
        if argument in owner:
            value, label = owner[argument], f'{path} = {owner[argument]!r}'
        else:
            value = _default(type_name(owner), argument)
            label = (f'{path} is not set' if value is None else
                     f"{path} = {value!r} ({type_name(owner)}'s default)")
        seen.append((label, value))
    for label, value in seen[1:]:
        if _plain(value) != _plain(seen[0][1]):
            raise ConfigError(f'{seen[0][0]} but {label}: the places of {key} disagree; '
                              f'set {key} once, at the top level of the config')


def _resolve_adapter(cfg: Config, earlier_num_slices: Any) -> List[str]:
    """Give the neck adapter the backbone's output depths, or check its own value; an
    adapter holding the depths of ``earlier_num_slices`` (the backbone's count before it
    followed a changed top level) follows too."""
    found = _adapter(cfg)
    backbone = (cfg.get('model') or {}).get('backbone')
    if found is None or not isinstance(backbone, dict) or not _takes(
            type_name(backbone), 'num_slices'):
        return []
    path, adapter = found
    num_slices = _value_at(backbone, 'num_slices', type_name(backbone))
    if not isinstance(num_slices, int) or isinstance(num_slices, bool):
        return []  # no slice count anywhere: building the backbone says so
    levels = len(adapter.get('in_channels') or ()) or 4
    depths = _backbone_depths(backbone, int(num_slices), levels)
    expected: Union[int, List[int]] = depths[0] if len(set(depths)) == 1 else depths
    if 'num_slices' not in adapter or adapter['num_slices'] is None:
        adapter['num_slices'] = expected
        return [f'{path}.num_slices = {expected!r} (the backbone\'s output depths)']
    given = adapter['num_slices']
    given_depths = [given] * len(depths) if isinstance(given, int) else list(given)
    if _plain(given_depths) == _plain(depths):
        return []
    if isinstance(earlier_num_slices, int) and _plain(given_depths) == _plain(
            _backbone_depths(backbone, earlier_num_slices, levels)):
        adapter['num_slices'] = expected
        return [f'{path}.num_slices = {expected!r} (was {given!r}; the backbone\'s output '
                'depths)']
    raise ConfigError(
        f'{path}.num_slices = {given!r} but the backbone ({type_name(backbone)}, '
        f'num_slices={num_slices}) outputs slice depths {depths}: the neck adapter follows '
        f'the backbone; set its num_slices to {expected!r} or leave it out')


def check_evaluator_inputs(cfg: Config) -> None:
    """Refuse a val / test evaluator whose dataloader does not give a metric what it reads.

    For each metric of ``val_evaluator`` / ``test_evaluator`` (a dict or a list of dicts)
    whose registered class has a ``check_pipeline(pipeline, where)`` class method (e.g.
    :meth:`~mp3d_mmdet.evaluation.FROCMetric.check_pipeline`), that method runs on every
    pipeline of the matching dataloader's dataset.

    Raises:
        ConfigError: the metric's one line naming the pipeline and the fix.
    """
    from mmdet.registry import METRICS
    for split in ('val', 'test'):
        evaluator = cfg.get(f'{split}_evaluator')
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict) or not isinstance(loader.get('dataset'), dict):
            continue
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            check = getattr(METRICS.get(type_name(metric)) if isinstance(metric, dict)
                            else None, 'check_pipeline', None)
            if check is None:
                continue
            for path, pipeline in dataset_pipelines(loader['dataset'],
                                                    f'{split}_dataloader.dataset'):
                check(pipeline, path)


def load_config(config: Union[str, Config], cfg_options: Optional[Dict[str, Any]] = None
                ) -> Config:
    """Read a config the way the plugin's runner sees it.

    Args:
        config: a config file, or a ``Config`` (copied, not changed).
        cfg_options: ``--cfg-options`` style overrides, merged before resolving.

    Returns:
        With the slice-input settings resolved (:func:`resolve_config`) and the
        evaluators checked (:func:`check_evaluator_inputs`).

    Raises:
        ConfigError: see those functions. (A missing or broken file raises mmengine's error.)
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    resolve_config(cfg)
    check_evaluator_inputs(cfg)
    return cfg


def parse_config_text(text: str) -> Dict[str, Any]:
    """Read config text -- mmengine's ``pretty_text``, as checkpoints record the config they
    were trained with -- without running it.

    Only literals and ``dict(...)`` calls are evaluated; any other expression (a function
    call, a name, arithmetic) becomes None. A checkpoint is data from elsewhere: executing its
    text the way ``Config.fromstring`` does would run whatever it holds.

    Args:
        text: the config text.

    Returns:
        Top-level name -> value for each ``name = ...`` statement.

    Raises:
        ValueError: the text is not Python syntax.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        raise ValueError(f'not config text ({error.msg}, line {error.lineno})') from None
    values: Dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            values[node.targets[0].id] = _literal(node.value)
    return values


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)
                if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float)):
            return -value if isinstance(node.op, ast.USub) else value
    return None

"""How the plugin reads a config: one owner for each setting several parts must share, and
the checks that would otherwise fail only after a training epoch.

**The N-slice input.** The slice count appears in the loader of every dataloader, the
backbone and the neck adapter; the slice interval and HU window in every loader. A config
sets each once, at the top level, and the places follow (:func:`resolve_config`):

==================  =========================================================================
top-level key       places that take it
==================  =========================================================================
``num_slices``      ``model.backbone.num_slices`` (backbones that take it: MP3D, MR3D, 3DCE);
                    the neck adapter (``GroupTransform`` / ``CenterSliceTransform``) gets the
                    backbone's output depths, computed from it
                    (:func:`~mp3d_mmdet.models.backbones.slice_depths`: ``[5, 3, 2, 1]`` for 9
                    slices with isotropic slice pooling); every ``LoadCTSlices``
``slice_interval``  every ``LoadCTSlices``
``hu_window``       every ``LoadCTSlices``
==================  =========================================================================

The ``LoadCTSlices`` places are those of ``train_dataloader``, ``val_dataloader`` and
``test_dataloader`` (through dataset wrappers) and of the top-level ``*_pipeline`` lists. A
place that leaves the setting out takes the top-level value; a place that sets it must agree,
or :class:`ConfigError` names both (e.g. ``num_slices = 13 (top level) but
test_dataloader.dataset.pipeline[0].num_slices = 9``). So a child config that sets
``num_slices = 13``, or ``--cfg-options num_slices=13``, changes every place, and a place set
by hand to another value is refused before the first training iteration. A config without
the top-level key (e.g. another project's) is checked the same way: all places, with the
modules' defaults where a place leaves a value out, must agree.

**Evaluators.** ``FROCMetric`` reads the ground truth from each data sample's metainfo:
:func:`check_evaluator_inputs` refuses a val/test evaluator whose dataloader's
``PackDetInputs`` does not pack the keys it needs, naming the keys and where to add them.

The runner (:class:`~mp3d_mmdet.engine.DeviceAwareRunner`) applies both before it builds
anything; tools that build models from configs go through :func:`load_config`.
"""
import ast
import copy
import inspect
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from mmengine.config import Config

__all__ = ['ConfigError', 'SLICE_INPUT_KEYS', 'load_config', 'resolve_config',
           'check_evaluator_inputs', 'slice_input_places', 'parse_config_text', 'type_name',
           'config_pipelines', 'leaf_datasets']

#: Top-level keys owned by :func:`resolve_config`.
SLICE_INPUT_KEYS = ('num_slices', 'slice_interval', 'hu_window')
_LOADER = 'LoadCTSlices'
_ADAPTERS = ('GroupTransform', 'CenterSliceTransform')
_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


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
            yield from _dataset_pipelines(loader['dataset'], f'{name}.dataset')


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


def _dataset_pipelines(dataset: dict, path: str) -> Iterator[Tuple[str, list]]:
    """Pipelines of a dataset entry: its own (a wrapper's too) and those of the datasets it
    wraps."""
    if isinstance(dataset.get('pipeline'), list):
        yield f'{path}.pipeline', dataset['pipeline']
    if isinstance(dataset.get('dataset'), dict):  # RepeatDataset, ClassBalancedDataset ...
        yield from _dataset_pipelines(dataset['dataset'], f'{path}.dataset')
    for i, inner in enumerate(dataset.get('datasets') or []):  # ConcatDataset
        if isinstance(inner, dict):
            yield from _dataset_pipelines(inner, f'{path}.datasets[{i}]')


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
    return inspect.Parameter.empty if parameter is None else parameter.default


def _takes(type_name: str, argument: str) -> bool:
    return _parameter(type_name, argument) is not None


def _plain(value: Any) -> Any:
    """Lists for tuples (configs hold either), for comparing values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def slice_input_places(cfg: Config) -> Dict[str, List[Tuple[str, dict, str]]]:
    """Where each slice-input setting of ``cfg`` sits.

    Returns:
        dict: ``key -> [(path, owning dict, argument name), ...]`` for every key of
        :data:`SLICE_INPUT_KEYS`; ``num_slices`` lists the backbone and the loaders (the
        adapter's depths are derived, see :func:`resolve_config`).
    """
    places: Dict[str, List[Tuple[str, dict, str]]] = {k: [] for k in SLICE_INPUT_KEYS}
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
    from ..models.backbones.mp3d_resnet import slice_depths
    pooling = _value_at(backbone, 'slice_pooling', type_name(backbone))
    if pooling is inspect.Parameter.empty:
        pooling = 'none'
    out_indices = _value_at(backbone, 'out_indices', type_name(backbone))
    stages = len(backbone.get('stage_blocks') or ()) or 4
    depths = slice_depths(num_slices, pooling, stages)
    if out_indices in (None, inspect.Parameter.empty):
        out_indices = range(stages)
    return [depths[i] for i in out_indices][:num_levels]


def resolve_config(cfg: Config) -> List[str]:
    """Give every place its slice-input setting, or refuse disagreeing places (module doc).

    Args:
        cfg: a full config; changed in place.

    Returns:
        list[str]: one line per place filled in (e.g. ``'model.backbone.num_slices = 13'``).

    Raises:
        ConfigError: two places (or a place and the top level) disagree.
    """
    filled: List[str] = []
    places = slice_input_places(cfg)
    for key in SLICE_INPUT_KEYS:
        owner_value = cfg.get(key, inspect.Parameter.empty)
        seen: List[Tuple[str, Any]] = []  # (place as named in messages, value)
        for path, owner, argument in places[key]:
            if argument in owner:
                value, label = owner[argument], f'{path} = {owner[argument]!r}'
            elif owner_value is not inspect.Parameter.empty:
                owner[argument] = copy.deepcopy(owner_value)
                filled.append(f'{path} = {owner_value!r}')
                continue
            else:
                value = _default(type_name(owner), argument)
                label = (f'{path} is not set' if value is None else
                         f"{path} = {value!r} ({type_name(owner)}'s default)")
            if owner_value is not inspect.Parameter.empty and _plain(value) != _plain(
                    owner_value):
                raise ConfigError(
                    f'{key} = {owner_value!r} (top level) but {label}: set {key} once, at the '
                    f'top level (e.g. --cfg-options {key}=...), and leave it out of the '
                    'places that follow it')
            seen.append((label, value))
        for label, value in seen[1:]:
            if _plain(value) != _plain(seen[0][1]):
                raise ConfigError(f'{seen[0][0]} but {label}: the places of {key} disagree; '
                                  f'set {key} once, at the top level of the config')
    filled.extend(_resolve_adapter(cfg))
    return filled


def _resolve_adapter(cfg: Config) -> List[str]:
    """Give the neck adapter the backbone's output depths, or check its own value."""
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
    if _plain(given_depths) != _plain(depths):
        raise ConfigError(
            f'{path}.num_slices = {given!r} but the backbone ({type_name(backbone)}, '
            f'num_slices={num_slices}) outputs slice depths {depths}: leave num_slices out of '
            'the neck adapter, it follows the backbone')
    return []


def check_evaluator_inputs(cfg: Config) -> None:
    """Refuse a ``FROCMetric`` evaluator whose dataloader does not pack what it reads.

    For ``val_evaluator`` / ``test_evaluator`` (a dict or a list of dicts) of type
    ``FROCMetric``, the matching dataloader's ``PackDetInputs`` must list
    :meth:`~mp3d_mmdet.evaluation.FROCMetric.required_meta_keys` in ``meta_keys``.

    Raises:
        ConfigError: naming the evaluator, the missing keys and the transform to add them to.
    """
    from mmdet.registry import METRICS
    for split in ('val', 'test'):
        evaluator = cfg.get(f'{split}_evaluator')
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        loader = cfg.get(f'{split}_dataloader')
        for metric in metrics:
            if not isinstance(metric, dict) or type_name(metric) != 'FROCMetric':
                continue
            required = METRICS.build(copy.deepcopy(metric)).required_meta_keys()
            if not isinstance(loader, dict):
                continue
            for path, pipeline in _dataset_pipelines(loader.get('dataset') or {},
                                                     f'{split}_dataloader.dataset'):
                packs = [(i, t) for i, t in enumerate(pipeline)
                         if isinstance(t, dict) and type_name(t) == 'PackDetInputs']
                for i, pack in packs:
                    keys = pack.get('meta_keys')
                    if keys is None:
                        keys = _default('PackDetInputs', 'meta_keys')
                    missing = [k for k in required if k not in tuple(keys)]
                    if missing:
                        raise ConfigError(
                            f'{split}_evaluator FROCMetric reads {missing} from every data '
                            f"sample, but {path}[{i}] (PackDetInputs) does not pack them: add "
                            f'{missing} to its meta_keys')


def load_config(config: Union[str, Config], cfg_options: Optional[Dict[str, Any]] = None
                ) -> Config:
    """Read a config the way the plugin's runner sees it.

    Args:
        config: a config file, or a ``Config`` (copied, not changed).
        cfg_options: ``--cfg-options`` style overrides, merged before resolving.

    Returns:
        Config: with the slice-input settings resolved (:func:`resolve_config`) and the
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
        dict: top-level name -> value for each ``name = ...`` statement.

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

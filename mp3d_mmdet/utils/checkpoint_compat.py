"""Let torch >= 2.6 load mmengine checkpoints with ``weights_only=True``.

From torch 2.6 on, :func:`torch.load` defaults to ``weights_only=True``: it unpickles only
tensors, containers and an allow-list of classes. mmengine 0.10.7 calls ``torch.load``
without ``weights_only``, and the checkpoints it writes hold, besides the weights, the
runner's ``message_hub`` (``HistoryBuffer`` objects with numpy arrays of logged scalars).
Resuming a run (``--resume``) and ``mim test --checkpoint`` then fail with
``Unsupported global: ... HistoryBuffer``.

The narrowest fix, applied when :mod:`mp3d_mmdet` is imported, keeps ``weights_only=True``
and adds exactly the classes those checkpoints contain to torch's allow-list:

* ``mmengine.logging.HistoryBuffer`` -- a plain container of two numpy arrays and an int;
* numpy's array/scalar reconstruction functions and dtype classes
  (:func:`~mp3d_mmdet.utils.pickle_allowlist.numpy_pickle_globals`), which rebuild arrays
  from raw bytes without running arbitrary code.

One more thing stands in the way: mmengine's ``HistoryBuffer.__getstate__`` also pickles its
class-level table of statistics functions (``min``, ``max``, ``current``, ``mean``), which
pickle stores as ``getattr(HistoryBuffer, 'min')``. Allow-listing ``builtins.getattr`` would
let any checkpoint fetch attributes of anything it can build, so instead the plugin makes
``HistoryBuffer`` leave those four built-in functions out of its pickled state (its
``__setstate__`` restores them anyway). Checkpoints written with the plugin imported thus
contain nothing beyond the allow-list.

Trust model: nothing else becomes loadable. A checkpoint that pickles any other object
(including one written by an mmengine run without this plugin, which carries the ``getattr``
entries, or one whose run registered custom ``HistoryBuffer`` statistics) still fails to load
and torch names the global; setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` remains the user's
explicit decision to trust such a file fully. The allow-listed classes only rebuild data, so
loading a checkpoint from an untrusted source stays as safe as torch's default makes it.
"""
from typing import Any, Dict, List

import torch

from .pickle_allowlist import numpy_pickle_globals


def mmengine_checkpoint_globals() -> List[object]:
    """Return the classes and functions that mmengine checkpoints pickle besides tensors.

    Returns:
        ``HistoryBuffer`` and :func:`~mp3d_mmdet.utils.pickle_allowlist.numpy_pickle_globals`,
        to pass to :func:`torch.serialization.add_safe_globals`.
    """
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, *numpy_pickle_globals()]


#: Statistics every HistoryBuffer re-creates in ``__setstate__``; no need to pickle them.
_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_state(self: Any) -> Dict[str, Any]:
    """``HistoryBuffer.__getstate__`` without the built-in statistics functions.

    mmengine's version stores ``self._statistics_methods`` (functions, pickled through
    ``getattr``) under ``statistics_methods``; only custom-registered ones are kept here.
    """
    state = {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}
    custom = {name: method for name, method in self._statistics_methods.items()
              if name not in _BUILTIN_STATISTICS}
    if custom:
        state['statistics_methods'] = custom
    return state


def allow_mmengine_checkpoints() -> bool:
    """Allow-list :func:`mmengine_checkpoint_globals` for ``torch.load(weights_only=True)``
    and make ``HistoryBuffer`` pickle without ``getattr`` entries (see the module docstring).

    Idempotent. Does nothing on torch releases without ``add_safe_globals`` (< 2.4), which
    do not default to ``weights_only=True`` either.

    Returns:
        True if the allow-list was extended (or already was), False if torch has no
        allow-list.
    """
    from mmengine.logging import HistoryBuffer

    HistoryBuffer.__getstate__ = _history_buffer_state
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_checkpoint_globals())
    return True

"""What the plugin lets a pickle rebuild: data only, never code.

A pickle can name any importable function and have it called while loading, so reading
one is running it. The plugin reads two kinds of pickles, both under an allow-list of
globals that only rebuild data:

* **Checkpoints** go through ``torch.load(weights_only=True)`` (torch's own allow-list of
  tensors and containers), extended by :mod:`mp3d_mmdet.utils.checkpoint_compat` with
  mmengine's ``HistoryBuffer`` and :func:`numpy_pickle_globals`.
* **Prediction files** (``mim test ... --out predictions.pkl``: mmdet's ``DumpDetResults``
  writes plain :mod:`pickle`) go through :func:`load_pickle_allowlisted`, which accepts
  the built-in containers and scalars, ``collections.OrderedDict``, numpy arrays, scalars
  and dtypes (:func:`numpy_pickle_globals`) and CPU torch tensors -- whose storages torch
  pickles as a nested ``torch.save`` blob, read here with ``weights_only=True`` instead of
  torch's own ``weights_only=False``. Any other global is refused with a one-line error
  naming it and the file.
"""
import _compat_pickle
import builtins
import codecs
import collections
import io
import pickle
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

__all__ = ['numpy_pickle_globals', 'UnsafePickleError', 'load_pickle_allowlisted']

#: numpy dtypes whose classes pickled arrays and scalars name.
_NUMPY_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'float16', 'float32', 'float64')


def numpy_pickle_globals() -> List[object]:
    """numpy's array/scalar reconstruction helpers and dtype classes.

    They rebuild arrays and scalars from raw bytes (``_reconstruct``, ``scalar``,
    ``_frombuffer`` for protocol-5 pickles) and run no other code.

    Returns:
        ``numpy.ndarray``, ``numpy.dtype``, the concrete dtype classes of
        :data:`_NUMPY_DTYPES` and the reconstruction functions.
    """
    try:  # numpy 1.x keeps the pickling helpers in numpy.core
        from numpy.core.multiarray import _reconstruct, scalar
        from numpy.core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 2 moved them to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar  # type: ignore
        from numpy._core.numeric import _frombuffer  # type: ignore
    dtype_classes = [type(np.dtype(name)) for name in _NUMPY_DTYPES]
    return [np.ndarray, np.dtype, _reconstruct, scalar, _frombuffer, *dtype_classes]


class UnsafePickleError(ValueError):
    """A pickle names a global outside the allow-list; the message is one line."""


def _load_storage_weights_only(data: bytes) -> Any:
    """What ``torch.storage._load_from_bytes`` does, with ``weights_only=True``."""
    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


def _allowed_globals() -> Dict[Tuple[str, str], Callable]:
    import torch._utils
    allowed: Dict[Tuple[str, str], Callable] = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('_codecs', 'encode'): codecs.encode,  # bytes in protocol-2 pickles
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_tensor'): torch._utils._rebuild_tensor,
        ('torch.storage', '_load_from_bytes'): _load_storage_weights_only,
        ('torch', 'Size'): torch.Size,
    }
    for name in ('set', 'frozenset', 'complex', 'slice', 'bytearray'):
        allowed[('builtins', name)] = getattr(builtins, name)
    for obj in numpy_pickle_globals():
        allowed[(obj.__module__, obj.__name__)] = obj
        if obj.__module__.startswith('numpy._core'):  # pickles of numpy 1.x name numpy.core
            allowed[('numpy.core' + obj.__module__[len('numpy._core'):], obj.__name__)] = obj
        elif obj.__module__.startswith('numpy.core'):  # and numpy 2.x pickles numpy._core
            allowed[('numpy._core' + obj.__module__[len('numpy.core'):], obj.__name__)] = obj
    return allowed


class _AllowListUnpickler(pickle.Unpickler):

    def __init__(self, handle, path: str) -> None:
        super().__init__(handle)
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        # protocol 0-2 pickles name Python 2 modules (``__builtin__.set``): map them as
        # pickle's own find_class does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f'{self.path}: refused to load: the pickle asks for {module}.{name}, which is '
                'not plain data (allowed: built-in containers, numpy arrays, torch tensors); '
                'only load pickles you trust with other tools') from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f'{self.path}: refused to load: the pickle uses persistent '
                                f'ids ({str(pid)[:60]}), which plain data pickles do not')


def load_pickle_allowlisted(path: str) -> Any:
    """Unpickle a file, rebuilding only plain data (see the module docstring).

    Args:
        path: a pickle file.

    Returns:
        The unpickled object (containers of Python scalars, strings, numpy arrays and
        scalars, CPU torch tensors).

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
        ValueError: the file is not a readable pickle (truncated, another format).
    """
    with open(path, 'rb') as handle:
        try:
            return _AllowListUnpickler(handle, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
                IndexError, AttributeError, RuntimeError) as error:
            detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ''
            raise ValueError(f'{path}: not a readable pickle ({type(error).__name__}: '
                             f'{detail})') from None

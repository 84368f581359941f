"""Reading checkpoint files with errors that say what the file is and what was expected.

``torch.load`` answers a wrong file with whatever its unpickler trips over first
(``EOFError`` for an empty file, ``IndexError: pop from empty list`` for a text file,
``KeyError: 101`` for other data). The plugin's loaders check the file first:

* :func:`check_checkpoint_file` reads the first bytes only: the file exists, is not empty,
  and is a PyTorch checkpoint (a zip archive, torch's format since 1.6, or a pickle, the
  legacy format) -- otherwise it names what the file looks like (text, another binary);
* :func:`load_state_dict_file` then loads it with ``torch.load(weights_only=True)`` (see
  :mod:`mp3d_mmdet.utils.pickle_allowlist` for what that trusts) and finds the weights: an
  mmengine checkpoint (``{'state_dict': ..., 'meta': ...}``) or a bare state dict, with a
  leading ``module.`` (DDP) stripped.

All errors are one line, start with the path and are :class:`CheckpointFileError`
(a ``ValueError``) or ``FileNotFoundError``.
"""
import os
import os.path as osp
from typing import Any, Dict, Mapping, Tuple

import torch
from torch import Tensor

__all__ = ['CheckpointFileError', 'check_checkpoint_file', 'load_state_dict_file',
           'strip_module_prefix']

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL_OPCODE = b'\x80'


class CheckpointFileError(ValueError):
    """The file is not a usable checkpoint; the message is one line naming the file."""


def _describe_content(head: bytes) -> str:
    """What the first bytes of a non-checkpoint file look like."""
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return f'binary data starting with {head[:8].hex(" ")}'
    if all(ch.isprintable() or ch in '\r\n\t' for ch in text):
        first_line = text.strip().splitlines()[0][:60] if text.strip() else ''
        return f'a text file starting with {first_line!r}'
    return f'binary data starting with {head[:8].hex(" ")}'


def check_checkpoint_file(path: str, what: str = 'checkpoint', hint: str = '') -> None:
    """Check from its first bytes that ``path`` is a PyTorch checkpoint file.

    Args:
        path: the file.
        what: what the file should be, for the messages (e.g. ``'--checkpoint'``).
        hint: appended to the message of a missing file (where to look, how to make it).

    Raises:
        FileNotFoundError: no such file.
        CheckpointFileError: a folder, an empty file, or neither a zip archive nor a pickle.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'{what} file not found: {path}{hint}')
    if osp.isdir(path):
        raise CheckpointFileError(f'{path}: a folder, expected a {what} file (.pth)')
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointFileError(f'{path}: an empty file (0 bytes), expected a {what} '
                                  '(.pth written by torch.save / mmengine)')
    with open(path, 'rb') as handle:
        head = handle.read(64)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTOCOL_OPCODE):
        return
    raise CheckpointFileError(f'{path}: {_describe_content(head)} ({size:,} bytes), not a '
                              f'PyTorch {what} (a zip archive or pickle written by '
                              'torch.save / mmengine)')


def load_state_dict_file(path: str, what: str = 'checkpoint'
                         ) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """Load the weights of a checkpoint file safely (``torch.load(weights_only=True)``).

    Args:
        path: an mmengine checkpoint (a dict with ``state_dict`` and optionally
            ``meta``) or a bare state dict (a dict of tensors). A ``module.`` prefix on every
            key (a DDP-wrapped model) is stripped.
        what: what the file should be, for the messages.

    Returns:
        The state dict (tensors on the CPU) and the
        checkpoint's ``meta`` (``{}`` if none).

    Raises:
        FileNotFoundError: no such file.
        CheckpointFileError: not a PyTorch checkpoint (see :func:`check_checkpoint_file`),
            truncated or otherwise unreadable with ``weights_only=True``, or holding no
            state dict (the message lists the top-level keys it does hold).
    """
    check_checkpoint_file(path, what)
    try:  # mmengine's checkpoint classes are allow-listed by `import mp3d_mmdet`
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types; all mean "not loadable"
        lines = str(error).strip().splitlines()
        detail = lines[0][:200] if lines else ''
        if 'central directory' in detail or isinstance(error, EOFError):
            detail += ' -- truncated? (an interrupted write)'
        raise CheckpointFileError(f'{path}: cannot be read as a {what} with weights_only=True '
                                  f'({type(error).__name__}: {detail})') from None
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get('state_dict'), Mapping):
        state_dict, meta = ckpt['state_dict'], ckpt.get('meta') or {}
    elif isinstance(ckpt, Mapping) and ckpt and all(isinstance(v, Tensor) for v in ckpt.values()):
        state_dict, meta = ckpt, {}
    else:
        keys = list(ckpt)[:6] if isinstance(ckpt, Mapping) else None
        found = f'a dict with keys {keys}' if keys is not None else type(ckpt).__name__
        raise CheckpointFileError(f'{path}: holds {found}, no state dict; expected a {what} '
                                  "(a dict with 'state_dict', as mmengine writes, or a dict "
                                  'of tensors)')
    return strip_module_prefix(state_dict), dict(meta)


def strip_module_prefix(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The state dict without the ``module.`` that a DataParallel / DDP wrapper puts before
    every key (unchanged, as a new dict in the same order, unless every key has it)."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return dict(state_dict)

"""The one JSON reader for files a user gives: nesting depth bounded.

Python's :mod:`json` parser recurses once per nesting level, so a file of a few thousand
``[`` raises ``RecursionError`` (a traceback, not an error message). Every JSON the plugin
reads from a user -- annotation files, FROC record files, results files -- goes through
:func:`loads_json`, which refuses nesting deeper than :data:`MAX_JSON_DEPTH` levels before
parsing, with a :class:`json.JSONDecodeError` (a ``ValueError``) that gives the line and
column where the limit is passed; callers report it like any other decoding error, in one
line naming the file. The plugin's own formats nest at most 4 levels.
"""
import json
import re
from typing import Optional, Union

import numpy as np

__all__ = ['MAX_JSON_DEPTH', 'loads_json']

#: Deepest nesting of arrays and objects accepted (the plugin's formats use at most 4).
MAX_JSON_DEPTH = 32

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def _depth_exceeded_at(text: str, max_depth: int) -> Optional[int]:
    """Offset in ``text`` of the first ``[`` or ``{`` nested deeper than ``max_depth``, or
    None. Brackets inside strings do not count."""
    skeleton = np.frombuffer(_STRING.sub('', text).encode('utf-8', 'surrogatepass'), np.uint8)
    step = ((skeleton == ord('[')) | (skeleton == ord('{'))).astype(np.int32)
    step -= ((skeleton == ord(']')) | (skeleton == ord('}'))).astype(np.int32)
    if not step.size or int(np.cumsum(step, dtype=np.int32).max()) <= max_depth:
        return None
    depth = 0
    for token in _TOKEN.finditer(text):  # rare: locate the offset for the message
        bracket = token.group()
        if bracket in '[{':
            depth += 1
            if depth > max_depth:
                return token.start()
        elif bracket in ']}':
            depth -= 1
    return None  # only an unterminated string nests this deep; json.loads reports it


def loads_json(text: Union[str, bytes], max_depth: int = MAX_JSON_DEPTH) -> object:
    """Parse JSON text like :func:`json.loads`, refusing nesting deeper than ``max_depth``.

    Args:
        text: the JSON text (bytes are decoded as UTF-8, an optional byte-order mark
            skipped).
        max_depth: deepest nesting of arrays and objects accepted.

    Returns:
        The parsed value.

    Raises:
        json.JSONDecodeError: not JSON, or nested deeper than ``max_depth`` (e.g. ``"nested
            deeper than 32 levels: line 1 column 33 (char 32)"``).
        UnicodeDecodeError: ``text`` is bytes that are not UTF-8.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode('utf-8-sig')
    offset = _depth_exceeded_at(text, max_depth)
    if offset is not None:
        raise json.JSONDecodeError(f'nested deeper than {max_depth} levels', text, offset)
    return json.loads(text)

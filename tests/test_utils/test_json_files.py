"""The bounded JSON reader: nesting depth refused before parsing, strings not counted."""
import json

import pytest

from mp3d_mmdet.utils.json_files import MAX_JSON_DEPTH, loads_json


def test_plain_json_and_bytes_with_a_byte_order_mark():
    text = '{"a": [1, {"b": "[[[[{{{{"}], "c": null}'
    assert loads_json(text) == json.loads(text)
    assert loads_json(b'\xef\xbb\xbf' + text.encode()) == json.loads(text)


def test_depth_limit_is_exact_and_names_the_position():
    deepest = '[' * MAX_JSON_DEPTH + ']' * MAX_JSON_DEPTH
    assert loads_json(deepest) is not None
    with pytest.raises(json.JSONDecodeError, match=r'nested deeper than 32 levels: line 1 '
                       r'column 33 \(char 32\)'):
        loads_json('[' * 33 + ']' * 33)
    with pytest.raises(json.JSONDecodeError, match=r'nested deeper than 3 levels: line 2 '
                       r'column 9'):
        loads_json('{"x": "[[[[",\n "y": [[{"z": 1}]]}', max_depth=3)


def test_far_too_deep_is_refused_not_a_recursion_error():
    for text in ('[' * 200000, '{"a":' * 100000 + '1' + '}' * 100000):
        with pytest.raises(json.JSONDecodeError, match='nested deeper than 32 levels'):
            loads_json(text)


def test_other_errors_are_the_parsers():
    with pytest.raises(json.JSONDecodeError, match='Expecting value'):
        loads_json('{"a": ')
    with pytest.raises(UnicodeDecodeError):
        loads_json(b'{"a": "\xff"}')

"""The CLI's json-free JSON (cli/fastjson.py) gives what json gives."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibox.cli import fastjson

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=5)
                       | st.dictionaries(st.text(), kids, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_dumps_and_loads_match_json(value):
    text = fastjson.dumps(value)
    assert text == json.dumps(value)
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == value
    assert fastjson.loads(f" \n{text}\t ") == value


def test_constants_and_errors():
    assert math.isnan(fastjson.loads("NaN")) and fastjson.loads("[Infinity]") == [math.inf]
    for bad in ("", "{", "[1,]", "1 2", "nul", '"\x01"'):
        with pytest.raises(ValueError):
            fastjson.loads(bad)
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})


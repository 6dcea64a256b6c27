"""JSON for the CLI's fast paths (a foreground `run`, `stats`) without the json package.

``import json`` pulls in re, enum, functools and more: ~10 ms of a ~35 ms `minibox stats`
on the development VM.  The work is done by the same C scanner and encoder json uses
(CPython's ``_json``), driven here directly; the output is json.dumps's and the result
json.loads's (tests/test_fastjson.py compares them).  Without ``_json``, this is json.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - not CPython
    _json = None

_WS = " \t\n\r"


class _Context:
    """What json's C scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class JSONDecodeError(ValueError):
    pass


if _json is not None:
    _scan = _json.make_scanner(_Context())

    def _default(o):
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    _encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                                 ": ", ", ", False, False, True)

    def loads(text: str | bytes):
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        i = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = _scan(text, i)
        except StopIteration as e:
            raise JSONDecodeError(f"invalid JSON at offset {e.value}") from None
        if text[end:].strip(_WS):
            raise JSONDecodeError(f"extra data at offset {end}")
        return obj

    def dumps(obj) -> str:
        return "".join(_encode(obj, 0))
else:  # pragma: no cover
    from json import JSONDecodeError, dumps, loads  # noqa: F401,F811

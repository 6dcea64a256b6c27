"""Frozen dataclasses <-> plain JSON-able dicts (what Celery and the event stream carry).

A field whose default is None and whose value is None is left out of the dict (so an
optional field costs nothing on the wire); keys a reader does not know are ignored (a newer
sender may add fields); a missing required key is a ProtocolError naming the message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


class ProtocolError(ValueError):
    """A message that does not have the shape its contract says: a bug or a version skew
    between the daemon and a worker, never a user's mistake."""


def to_wire(obj: Any) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None and f.default is None:
            continue
        out[f.name] = value
    return out


def from_wire(cls: type[T], data: dict, what: str | None = None) -> T:
    if not isinstance(data, dict):
        raise ProtocolError(f"{what or cls.__name__}: expected an object, got "
                            f"{type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    missing = [n for n, f in names.items() if n not in data and _required(f)]
    if missing:
        raise ProtocolError(f"{what or cls.__name__}: missing {', '.join(missing)}; "
                            "are the daemon and the workers the same MiniBox version?")
    return cls(**{k: v for k, v in data.items() if k in names})


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING

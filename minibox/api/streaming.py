"""Streamed answers that fail half-way end with an error, never as a clean, truncated 200.

Once a stream has started, its status line (200) is sent: an error can only be said in
the stream itself.  NDJSON streams end with a ``{"type": "stream_error", "error": {...}}``
line; multiplexed streams with a stream-3 frame ``{"error": {...}}`` (where a finished
container's is ``{"exit_code": n}``).  Byte streams with no room for a frame (plain logs,
tars) are cut without their final chunk, which every HTTP client reports as an error.
"""

from __future__ import annotations

import json
import logging

from minibox.errors import MiniBoxError
from minibox.runtime.io.streams import EXIT, frame

log = logging.getLogger("minibox.api")
STREAM_ERROR = "stream_error"


def _error_dict(err: BaseException, what: str) -> dict:
    if isinstance(err, MiniBoxError):
        return err.to_dict()
    log.exception("%s failed while streaming", what)
    return {"kind": "internal", "message": f"{what} failed while streaming: {err!r}",
            "hint": "this is a bug in miniboxd; its log has the traceback"}


def ndjson_guard(gen, what: str):
    """``gen``'s lines; if it raises, one last ``stream_error`` line saying why."""
    try:
        yield from gen
    except Exception as e:       # noqa: BLE001 - reported in the stream, logged if a bug
        yield json.dumps({"type": STREAM_ERROR, "error": _error_dict(e, what)}) + "\n"


def mux_guard(gen, what: str):
    """``gen``'s frames; if it raises, one last stream-3 frame ``{"error": ...}``."""
    try:
        yield from gen
    except Exception as e:       # noqa: BLE001 - reported in the stream, logged if a bug
        yield frame(EXIT, json.dumps({"error": _error_dict(e, what)}).encode())

"""Reading the daemon's multiplexed streams (Docker's 8-byte frame headers) in the CLI."""

from __future__ import annotations

import json
import struct
import sys

STDOUT, STDERR, EXIT = 1, 2, 3


def frames(resp):
    """Yield (stream, payload) from a streamed response (httpx, or http.client's)."""
    buf = b""
    chunks = resp.iter_raw() if hasattr(resp, "iter_raw") else _chunks(resp)
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 8:
            stream, size = struct.unpack(">BxxxI", buf[:8])
            if len(buf) < 8 + size:
                break
            yield stream, buf[8:8 + size]
            buf = buf[8 + size:]


def copy_out(resp) -> dict | None:
    """Write stdout/stderr frames to ours; return the exit record if the stream had one."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    result = None
    for stream, data in frames(resp):
        if stream == EXIT:
            result = json.loads(data)
            continue
        target = err if stream == STDERR else out
        target.write(data)
        target.flush()
    return result


def _chunks(resp):
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return
        yield chunk

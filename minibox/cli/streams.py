"""Reading the daemon's multiplexed streams (Docker's 8-byte frame headers) in the CLI, and
feeding our stdin to a container's or an exec's (-i without -t)."""

from __future__ import annotations

import os
import struct
import sys

from minibox.cli import fastjson as json

STDOUT, STDERR, EXIT = 1, 2, 3


def frames(resp):
    """Yield (stream, payload) from a streamed response (cli/client.py's)."""
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        pos, n = 0, len(buf)
        while n - pos >= 8:        # walk by offset: slicing buf per frame was quadratic
            stream, size = struct.unpack_from(">BxxxI", buf, pos)
            if n - pos - 8 < size:
                break
            yield stream, bytes(buf[pos + 8:pos + 8 + size])
            pos += 8 + size
        del buf[:pos]


def copy_out(resp) -> dict | None:
    """Write stdout/stderr frames to ours; return the exit record if the stream had one.
    Output is written as it comes (flushed at each frame: the daemon sends a frame for
    what it has, many lines at once when it has many)."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    result = None
    for stream, data in frames(resp):
        if stream == EXIT:
            result = json.loads(data)
            if isinstance(result, dict) and isinstance(result.get("error"), dict):
                from minibox.errors import MiniBoxError     # the daemon failed mid-stream
                raise MiniBoxError.from_dict(result["error"])
            continue
        target = err if stream == STDERR else out
        target.write(data)
        target.flush()
    return result


def feed_stdin(path: str):
    """Send our stdin, as it comes and unchanged, as the chunked body of POST ``path`` (in
    a thread: the output is read meanwhile).  Its end is the container's EOF.  A container
    that ended first makes the daemon answer early: nothing to report then."""
    def run():
        from minibox.cli.client import Client
        from minibox.errors import MiniBoxError
        try:
            Client(timeout=None).post(path, content=_stdin_chunks())
        except (MiniBoxError, OSError, ValueError):
            pass
    import threading            # only with -i: the plain run path stays without it
    t = threading.Thread(target=run, name="stdin", daemon=True)
    t.start()
    return t


def _stdin_chunks():
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return      # no usable stdin: EOF at once
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        yield data

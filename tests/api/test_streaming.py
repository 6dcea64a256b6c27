"""Streams that fail half-way end with an error the client reads, not a clean, truncated 200:
the guards the routers wrap their streams in, read back by the CLI's own readers."""

from __future__ import annotations

import io
import json

import pytest

from minibox.api.streaming import STREAM_ERROR, mux_guard, ndjson_guard
from minibox.cli.streams import copy_out, frames
from minibox.errors import MiniBoxError, NotFound
from minibox.runtime.io.streams import STDOUT, frame


def failing_frames():
    yield frame(STDOUT, b"first part\n")
    raise NotFound("the container's log is gone")


class Raw:
    """A response whose body is ``data`` (what copy_out / frames read)."""

    def __init__(self, data: bytes):
        self.data = data

    def iter_bytes(self):
        yield self.data


def test_a_multiplexed_stream_ends_with_an_error_frame(capfdbinary):
    data = b"".join(mux_guard(failing_frames(), "the logs of container x"))
    got = list(frames(Raw(data)))
    assert got[0] == (STDOUT, b"first part\n")
    stream, last = got[-1]
    assert stream == 3 and json.loads(last)["error"]["kind"] == "not_found"
    with pytest.raises(MiniBoxError) as info:
        copy_out(Raw(data))
    assert "log is gone" in info.value.message
    assert capfdbinary.readouterr().out == b"first part\n"


def test_an_ndjson_stream_ends_with_a_stream_error_line():
    def events():
        yield json.dumps({"type": "job_queued"}) + "\n"
        raise RuntimeError("redis went away")

    lines = [json.loads(x) for x in io.StringIO("".join(ndjson_guard(events(), "events")))]
    assert lines[0]["type"] == "job_queued"
    assert lines[-1]["type"] == STREAM_ERROR
    err = lines[-1]["error"]
    assert err["kind"] == "internal" and "redis went away" in err["message"]


def test_a_stream_that_ends_normally_is_unchanged():
    frames_in = [frame(STDOUT, b"a"), frame(3, b'{"exit_code": 0}')]
    assert list(mux_guard(iter(frames_in), "x")) == frames_in
    assert copy_out(Raw(b"".join(frames_in))) == {"exit_code": 0}

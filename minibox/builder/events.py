"""A build job's event stream, in Redis (one stream per job, XADD/XREAD).

The daemon (waves, job state) and the build workers (block start, log lines, done, failed)
append; the API replays and follows it for the CLI from any position, so a client that
reconnects misses nothing.  The events are minibox.wire.events's dataclasses.
"""

from __future__ import annotations

import json
import time

from minibox.wire.events import Event, Log
from minibox.wire.keys import job_events_key

STREAM_TTL = 24 * 3600
MAX_EVENTS = 50_000
MAX_LINE = 8192


class EventLog:
    def __init__(self, redis, job_id: str):
        self.redis = redis
        self.key = job_events_key(job_id)

    def emit(self, event: Event) -> None:
        """Append one event (its wire dict and the time now)."""
        self.emit_many([event])

    def emit_many(self, events: list[Event], pipe=None, times: dict | None = None,
                  then=None) -> None:
        """Append events in this order, in one round trip to Redis (after the commands
        already in ``pipe``, a non-transactional pipeline of the caller's, when given, and
        before those ``then(pipe)`` adds).  ``times``: when some of them happened, by
        position, if earlier than now."""
        if not events and pipe is None and then is None:
            return
        now = time.time()
        pipe = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for i, event in enumerate(events):
            fields = event.to_wire()
            fields["time"] = (times or {}).get(i, now)
            pipe.xadd(self.key, {"d": json.dumps(fields)}, maxlen=MAX_EVENTS, approximate=True)
        pipe.expire(self.key, STREAM_TTL)
        if then is not None:
            then(pipe)
        pipe.execute()

    def last_id(self) -> str:
        """The id of the newest event so far ("0" when there is none)."""
        last = self.redis.xrevrange(self.key, count=1)
        if not last:
            return "0"
        eid = last[0][0]
        return eid.decode() if isinstance(eid, bytes) else eid

    def read(self, since: str = "0", block_ms: int | None = None, count: int = 500):
        """Events after ``since`` as (stream id, dict) pairs; waits up to block_ms."""
        res = self.redis.xread({self.key: since}, count=count, block=block_ms)
        out = []
        for _key, entries in res or []:
            for eid, data in entries:
                eid = eid.decode() if isinstance(eid, bytes) else eid
                raw = data.get(b"d") or data.get("d")
                out.append((eid, json.loads(raw)))
        return out


class HeldEvents:
    """An event log that holds events back, up to ``hold`` seconds, so that they share a
    round trip: a block's events go out with the next that comes ``hold`` seconds after the
    first held one, at a ``tick()`` that finds them that old (the sandbox asks whether to
    cancel every 100 ms: that is the tick), or with the block's last pipeline -- which
    carries all of them when the block is shorter than ``hold``.  Each keeps the time it
    happened."""

    def __init__(self, log: EventLog, hold: float):
        self.log, self.hold = log, hold
        self.held: list[Event] = []
        self.times: dict[int, float] = {}
        self.since = 0.0

    def emit(self, event: Event) -> None:
        if not self.held:
            self.since = time.monotonic()
        self.times[len(self.held)] = time.time()
        self.held.append(event)
        self.tick()

    def tick(self) -> None:
        """Send what is held if it has waited ``hold`` seconds."""
        if self.held and time.monotonic() - self.since >= self.hold:
            self.emit_many([])

    def emit_many(self, events: list[Event], pipe=None, then=None) -> None:
        """What is held, then ``events``, as ``EventLog.emit_many``."""
        held, times = self.held, self.times
        self.held, self.times = [], {}
        self.log.emit_many(held + list(events), pipe=pipe, times=times, then=then)


class LineBuffer:
    """Turns a block's output bytes into whole lines, each emitted as a ``log`` event."""

    def __init__(self, events: EventLog | HeldEvents, block: str, tail: int = 20):
        self.events, self.block = events, block
        self.buf = b""
        self.tail: list[str] = []
        self.tail_size = tail

    def feed(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self._line(line)
        if len(self.buf) > MAX_LINE:
            self._line(self.buf)
            self.buf = b""

    def flush(self) -> None:
        if self.buf:
            self._line(self.buf)
            self.buf = b""

    def _line(self, raw: bytes) -> None:
        text = raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r")
        self.tail.append(text)
        del self.tail[:-self.tail_size]
        self.events.emit(Log(block=self.block, line=text))

"""Build events: what the daemon and the build workers append to a job's Redis stream
(``keys.job_events_key``) and what ``GET /builds/{id}/events`` replays to the CLI as NDJSON.

Each event is a frozen dataclass; on the wire it is its fields plus ``"type"`` (the class's
TYPE) and ``"time"`` (added by ``builder.events.EventLog.emit``).  In the order a build
produces them: job_queued, job_start (job_resumed after a daemon restart), base_pull (a registry
base), base, wave_start, block_queued | block_cached,
block_start, block_step, log, block_done | block_failed, block_result, wave_done, image,
job_done | job_failed | job_cancelled (and cancel_requested, block_retry on the way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from minibox.wire.codec import ProtocolError, from_wire, to_wire


@dataclass(frozen=True)
class Event:
    TYPE: ClassVar[str] = ""

    def to_wire(self) -> dict:
        return {"type": self.TYPE, **to_wire(self)}


# --- the job (daemon: builder.jobs) ----------------------------------------------------
@dataclass(frozen=True)
class JobQueued(Event):
    TYPE: ClassVar[str] = "job_queued"
    id: str
    tag: str


@dataclass(frozen=True)
class JobStart(Event):
    TYPE: ClassVar[str] = "job_start"
    id: str
    tag: str
    blocks: int


@dataclass(frozen=True)
class JobResumed(Event):
    """A daemon started after the job's daemon died took the job over."""
    TYPE: ClassVar[str] = "job_resumed"
    id: str
    reason: str


@dataclass(frozen=True)
class JobDone(Event):
    TYPE: ClassVar[str] = "job_done"
    tag: str
    digest: str
    duration: float
    cached: int
    built: int


@dataclass(frozen=True)
class JobFailed(Event):
    TYPE: ClassVar[str] = "job_failed"
    error: dict                       # MiniBoxError.to_dict()


@dataclass(frozen=True)
class JobCancelled(Event):
    TYPE: ClassVar[str] = "job_cancelled"
    error: dict


@dataclass(frozen=True)
class CancelRequested(Event):
    TYPE: ClassVar[str] = "cancel_requested"


# --- the waves (daemon: builder.scheduler) ---------------------------------------------
@dataclass(frozen=True)
class Base(Event):
    TYPE: ClassVar[str] = "base"
    ref: str
    digest: str
    layers: int


@dataclass(frozen=True)
class BasePull(Event):
    """Progress of pulling the base from a registry (minibox.registry's progress lines)."""
    TYPE: ClassVar[str] = "base_pull"
    ref: str
    status: str
    id: str = ""                      # the layer, for per-layer lines
    digest: str = ""
    total: int = 0
    current: int = 0


@dataclass(frozen=True)
class WaveStart(Event):
    TYPE: ClassVar[str] = "wave_start"
    wave: int
    blocks: list[str]


@dataclass(frozen=True)
class WaveDone(Event):
    TYPE: ClassVar[str] = "wave_done"
    wave: int
    cached: int
    built: int


@dataclass(frozen=True)
class BlockQueued(Event):
    TYPE: ClassVar[str] = "block_queued"
    block: str
    key: str
    reason: str                       # why it missed the cache


@dataclass(frozen=True)
class BlockCached(Event):
    """A hit: found by the daemon (note "metadata": nothing to execute) or by a worker
    that waited on the block's lock while another build made it (shared)."""
    TYPE: ClassVar[str] = "block_cached"
    block: str
    key: str
    note: str | None = None
    shared: bool | None = None


@dataclass(frozen=True)
class BlockRetry(Event):
    TYPE: ClassVar[str] = "block_retry"
    block: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class Image(Event):
    TYPE: ClassVar[str] = "image"
    tag: str
    digest: str
    layers: int


# --- one block (build worker: builder.executor) ----------------------------------------
@dataclass(frozen=True)
class BlockStart(Event):
    TYPE: ClassVar[str] = "block_start"
    block: str
    key: str
    worker: str                       # HOSTNAME:PID of the worker process executing it


@dataclass(frozen=True)
class BlockStep(Event):
    """A step begins (op set), or a note about one (PKG's command, a warning)."""
    TYPE: ClassVar[str] = "block_step"
    block: str
    line: int
    text: str
    op: str | None = None

    @classmethod
    def from_sandbox(cls, block: str, ev: dict) -> "BlockStep":
        """From the sandbox's ``on_event`` dict ({"type", "line", "op"?, "text"})."""
        return cls(block=block, line=ev.get("line", 0), text=ev.get("text", ""),
                   op=ev.get("op"))


@dataclass(frozen=True)
class Log(Event):
    TYPE: ClassVar[str] = "log"
    block: str
    line: str                         # one line of RUN output


@dataclass(frozen=True)
class BlockDone(Event):
    TYPE: ClassVar[str] = "block_done"
    block: str
    duration: float
    size: int
    digest: str
    empty: bool


@dataclass(frozen=True)
class BlockFailed(Event):
    TYPE: ClassVar[str] = "block_failed"
    block: str
    error: dict
    tail: list[str]


@dataclass(frozen=True)
class BlockResultEvent(Event):
    """The block's BlockResult (wire dict), for the daemon waiting on the stream."""
    TYPE: ClassVar[str] = "block_result"
    block: str
    key: str
    result: dict


EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in (
    JobQueued, JobStart, JobResumed, JobDone, JobFailed, JobCancelled, CancelRequested, Base, BasePull, WaveStart,
    WaveDone, BlockQueued, BlockCached, BlockRetry, Image, BlockStart, BlockStep, Log,
    BlockDone, BlockFailed, BlockResultEvent)}

#: the events that end a job's stream
TERMINAL_EVENTS = (JobDone.TYPE, JobFailed.TYPE, JobCancelled.TYPE)


def event_from_wire(data: dict) -> Event:
    """The Event a stream entry holds (its "time", and the API's "id", are not fields)."""
    cls = EVENT_TYPES.get(data.get("type") if isinstance(data, dict) else None)
    if cls is None:
        raise ProtocolError(f"unknown build event type {data.get('type')!r}"
                            if isinstance(data, dict) else "build event: expected an object")
    return from_wire(cls, data, f"{cls.TYPE} event")

"""Worker side of a build: execute one block and commit its layer.

Called by the thin Celery task ``minibox.builder.block``.  Content-addressed, so it is safe to
run twice: a Redis lock per cache key makes concurrent builds of the same key execute it
once (the second finds the entry the first wrote), and a worker killed mid-block leaves only
a temp dir that nothing trusts.  Build errors are returned, not raised, so they cross Celery
as plain JSON.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from minibox.builder import blocklock
from minibox.builder.cache import BlockCache
from minibox.builder.events import EventLog, HeldEvents, LineBuffer
from minibox.errors import Cancelled, MiniBoxError
from minibox.rmtree import remove_known, remove_tree
from minibox.wire.build import BlockJob, BlockResult
from minibox.wire.events import (BlockCached, BlockDone, BlockFailed, BlockResultEvent,
                                 BlockStart, BlockStep)
from minibox.wire.keys import job_cancel_key, job_hosts_key

CANCEL_EVERY = 0.5       # seconds between reads of a job's cancel flag while a block runs
HOLD = 0.1               # seconds a block's events may be held back to share a round trip
SWEEP_EVERY = 60.0       # seconds between a worker process's sweeps of dead blocks' dirs
#: what a block's work dir holds once its upper is committed: overlay's work dir (the
#: mark of a volatile mount in it) and the sandbox's scratch dir, emptied by the sandbox
_WORK_FILES = ("work/work/incompat/volatile/dirty",)
_WORK_DIRS = ("work/work/incompat/volatile", "work/work/incompat", "work/work", "work",
              "scratch")


def execute_block(job: BlockJob, *, store, redis, settings, started=None) -> BlockResult:
    """Run one block; the outcome is returned AND appended to the job's event stream as a
    ``block_result`` event: that is how the daemon learns it (Celery stores no result of a
    block, see workers/build_tasks.py).  ``started``: the task's STARTED record (key,
    value, ttl), written in the block's first round trip."""
    final = _Final(redis, EventLog(redis, job.job), job)
    result = _execute(job, store, redis, settings, final, started)
    if not final.sent:
        final.send(result)
    return result


class _Final:
    """What a block's end writes to Redis, sent in one round trip: the farm-wide cache
    entry, then the block's last events, the result, and the release of the key's lock
    last, so that whoever takes the lock next finds the entry."""

    def __init__(self, redis, events: EventLog, job: BlockJob):
        self.pipe = redis.pipeline(transaction=False)
        self.log, self.job = HeldEvents(events, HOLD), job
        self.events: list = []
        self.lock = None             # the key's lock, while it is held
        self.sent = False

    def send(self, result: BlockResult) -> None:
        self.events.append(BlockResultEvent(block=self.job.block, key=self.job.key,
                                            result=result.to_wire()))
        self.sent = True
        lock = self.lock
        then = None if lock is None else (lambda pipe: blocklock.release_in(pipe, lock))
        self.log.emit_many(self.events, pipe=self.pipe, then=then)


_hosts_told: set[str] = set()      # jobs whose host set has this host (in this process)


def _tell_host(redis, job_id: str) -> None:
    """Add this host to the job's hosts (``builds ls``), once per job and process."""
    if job_id in _hosts_told:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(job_hosts_key(job_id), socket.gethostname())
    pipe.expire(job_hosts_key(job_id), 7 * 86400)
    pipe.execute()
    if len(_hosts_told) > 1000:
        _hosts_told.clear()
    _hosts_told.add(job_id)


def _execute(job: BlockJob, store, redis, settings, final: _Final,
             started) -> BlockResult:
    block, key = job.block, job.key

    checked = {"at": -CANCEL_EVERY, "cancelled": False}

    def should_cancel() -> bool:
        """The job's cancel flag, read at most every CANCEL_EVERY seconds (the sandbox asks
        every 100 ms, which also sends the events held back long enough)."""
        final.log.tick()         # the block's held events, when they have waited enough
        now = time.monotonic()
        if not checked["cancelled"] and now - checked["at"] >= CANCEL_EVERY:
            checked["at"] = now
            checked["cancelled"] = bool(redis.exists(job_cancel_key(job.job)))
        return checked["cancelled"]

    try:
        cache = BlockCache(store, settings.cache_dir, redis)
        local = None if job.no_cache else cache.local(key)
        begun = blocklock.begin(redis, job.job, key, started=started,
                                read_cache=not job.no_cache and local is None,
                                should_cancel=should_cancel)
        checked.update(at=time.monotonic(), cancelled=begun.cancelled)
        if begun.cancelled:
            raise Cancelled("build cancelled")
        with blocklock.held(begun.lock):
            final.lock = begun.lock
            if not job.no_cache:
                # built meanwhile, here or on another host of the farm (the daemon has it)
                entry = cache.get(key, local_blob=False) if begun.waited else \
                    local or cache.decode(key, begun.shared_entry)
                if entry:
                    if store.has_blob(entry["layer"]["digest"]):
                        _share(job, store, settings, entry["layer"])
                    final.events.append(BlockCached(block=block, key=key, shared=True))
                    result = BlockResult.from_cache(entry["layer"])
                    final.send(result)
                    return result
            _tell_host(redis, job.job)
            result = _build(job, store, cache, should_cancel, settings, final)
            final.send(result)
            return result
    except MiniBoxError as e:
        tail = getattr(e, "tail", None) or []
        if not isinstance(e, Cancelled):
            final.events.append(BlockFailed(block=block, error=e.to_dict(), tail=tail))
        return BlockResult.failed(e.to_dict(), tail)


def _share(job: BlockJob, store, settings, layer: dict) -> None:
    """A worker on another machine found the block in its own cache: make sure the daemon
    has the layer too."""
    from minibox.builder import remote

    if job.is_remote(settings.data_root):
        daemon = remote.connect(job, settings)
        if not daemon.has_blob(layer["digest"]):
            daemon.push_blob(store, layer["digest"])


_swept = {"pid": 0, "at": 0.0}     # this process's last sweep


def sweep_dead(store) -> None:
    """Remove the work dirs of blocks whose worker process died (SIGKILL, OOM).

    Their mounts died with their mount namespace; what is left is a plain directory that
    nothing trusts, named ``block-p<PID>-…`` after the process that made it.  A pool
    process sweeps when it starts (the pool forks one in place of each that died, see
    workers/build_tasks.py) and then at most every SWEEP_EVERY seconds, as blocks come:
    not a glob of tmp/ per block.
    """
    now = time.monotonic()
    if _swept["pid"] == os.getpid() and now - _swept["at"] < SWEEP_EVERY:
        return
    _swept.update(pid=os.getpid(), at=now)
    tmp = Path(store.root) / "tmp"
    for d in tmp.glob("block-p*-*"):
        pid = d.name[len("block-p"):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            remove_tree(d, ignore_errors=True)


def _build(job: BlockJob, store, cache, should_cancel, settings,
           final: _Final) -> BlockResult:
    from minibox.builder import remote
    from minibox.sandbox import SandboxSpec, run_block
    from minibox.store.layertar import LayerInfo, commit_upper

    block = job.block
    daemon = None
    if job.is_remote(settings.data_root):
        daemon, job = remote.prepare(job, store, settings)
    events = final.log           # held back: a short block's all go in its last round trip
    events.emit(BlockStart(block=block, key=job.key,
                           worker=f"{socket.gethostname()}:{os.getpid()}"))
    t0 = time.monotonic()
    sweep_dead(store)
    tmp = Path(store.tmp_dir(f"block-p{os.getpid()}-{block[:20]}-"))
    lines = LineBuffer(events, block)
    try:
        def dirs(layers):
            return [str(store.ensure_layer_dir(LayerInfo.from_dict(x))) for x in layers]
        for sub in ("upper", "work", "scratch"):
            (tmp / sub).mkdir()
        spec = SandboxSpec(
            lower_dirs=dirs(job.lowers), upper_dir=str(tmp / "upper"),
            work_dir=str(tmp / "work"), scratch_dir=str(tmp / "scratch"),
            steps=job.steps, context_dir=job.context_dir,
            copy_from={n: dirs(ls) for n, ls in job.copy_from.items()},
            network=job.network)
        run_block(spec, on_output=lines.feed,
                  on_event=lambda e: events.emit(BlockStep.from_sandbox(block, e)),
                  should_cancel=should_cancel)
        lines.flush()
        layer = commit_upper(store, tmp / "upper", compression=settings.layer_compression,
                             clamp_mtime=job.timestamp)
        if daemon is not None:
            daemon.push_blob(store, layer.digest)
        cache.put(job.key, block, layer.to_dict(), pipe=final.pipe)
        took = time.monotonic() - t0
        final.events.append(BlockDone(block=block, duration=took, size=layer.size,
                                      digest=layer.digest, empty=layer.empty))
        return BlockResult.built(layer.to_dict(), took)
    except MiniBoxError as e:
        lines.flush()
        e.tail = getattr(e, "tail", None) or lines.tail
        raise
    finally:
        # normally what overlay and the sandbox leave (the upper became the layer): no walk
        remove_known(tmp, _WORK_FILES, _WORK_DIRS)

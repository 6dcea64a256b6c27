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
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from minibox.builder.cache import BlockCache
from minibox.builder.events import EventLog, LineBuffer
from minibox.errors import Cancelled, MiniBoxError
from minibox.rmtree import remove_tree
from minibox.wire.build import BlockJob, BlockResult
from minibox.wire.events import (BlockCached, BlockDone, BlockFailed, BlockResultEvent,
                                 BlockStart, BlockStep)
from minibox.wire.keys import LOCK_TTL, block_lock_key, job_cancel_key, job_hosts_key

CANCEL_EVERY = 0.5       # seconds between reads of a job's cancel flag while a block runs


class _Refresher:
    """One thread per worker process keeps every block lock it holds alive (a dead holder's
    lock expires); a thread started and joined per block cost more than the block's own
    Redis calls."""

    def __init__(self):
        self.pid = os.getpid()
        self.locks: set = set()
        self.mutex = threading.Lock()
        threading.Thread(target=self._run, daemon=True, name="lock-refresh").start()

    def _run(self) -> None:
        while True:
            time.sleep(LOCK_TTL / 3)
            with self.mutex:
                locks = list(self.locks)
            for lock in locks:
                try:
                    lock.reacquire()
                except Exception:   # lost or Redis gone: the block finishes; nothing to do
                    with self.mutex:
                        self.locks.discard(lock)


_refresher: _Refresher | None = None
_refresher_lock = threading.Lock()


@contextmanager
def _held(lock):
    """Keep a Redis lock alive while the block runs, then release it."""
    global _refresher
    with _refresher_lock:
        if _refresher is None or _refresher.pid != os.getpid():   # a forked pool child
            _refresher = _Refresher()
        refresher = _refresher
    with refresher.mutex:
        refresher.locks.add(lock)
    try:
        yield
    finally:
        with refresher.mutex:
            refresher.locks.discard(lock)
        try:
            lock.release()
        except Exception:
            pass


def _acquire(lock, should_cancel) -> None:
    while not lock.acquire(blocking=True, blocking_timeout=0.25):
        if should_cancel():
            raise Cancelled("build cancelled")


def execute_block(job: BlockJob, *, store, redis, settings) -> BlockResult:
    """Run one block; the outcome is returned AND appended to the job's event stream as a
    ``block_result`` event, so the daemon learns it without waiting on Celery's backend."""
    events = EventLog(redis, job.job)
    final = _Final(redis, events, job)
    result = _execute(job, store, redis, settings, events, final)
    if not final.sent:
        final.send(result)
    return result


class _Final:
    """What a block's end writes to Redis, sent in one round trip: the farm-wide cache
    entry, then the block's last events, the result last.  A built block sends it while it
    still holds the key's lock, so whoever takes the lock next finds the entry."""

    def __init__(self, redis, events: EventLog, job: BlockJob):
        self.pipe = redis.pipeline(transaction=False)
        self.log, self.job = events, job
        self.events: list = []
        self.sent = False

    def send(self, result: BlockResult) -> None:
        self.events.append(BlockResultEvent(block=self.job.block, key=self.job.key,
                                            result=result.to_wire()))
        self.sent = True
        self.log.emit_many(self.events, pipe=self.pipe)


class _StartFirst:
    """The job's event log, holding the block's start back until the next event goes out
    (its first step, normally: the sandbox is ready), so that the two share a round trip."""

    def __init__(self, log: EventLog, start):
        self.log, self.held, self.at = log, [start], time.time()

    def emit(self, event) -> None:
        self.emit_many([event])

    def emit_many(self, events: list, pipe=None) -> None:
        held, self.held = self.held, []
        self.log.emit_many(held + list(events), pipe=pipe,
                           times={0: self.at} if held else None)


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


def _execute(job: BlockJob, store, redis, settings, events: EventLog,
             final: _Final) -> BlockResult:
    block, key = job.block, job.key

    checked = {"at": -CANCEL_EVERY, "cancelled": False}

    def should_cancel() -> bool:
        """The job's cancel flag, read at most every CANCEL_EVERY seconds (the sandbox asks
        every 100 ms)."""
        now = time.monotonic()
        if not checked["cancelled"] and now - checked["at"] >= CANCEL_EVERY:
            checked["at"] = now
            checked["cancelled"] = bool(redis.exists(job_cancel_key(job.job)))
        return checked["cancelled"]

    try:
        if should_cancel():
            raise Cancelled("build cancelled")
        lock = redis.lock(block_lock_key(key), timeout=LOCK_TTL, thread_local=False)
        _acquire(lock, should_cancel)
        with _held(lock):
            cache = BlockCache(store, settings.cache_dir, redis)
            if not job.no_cache:
                # built meanwhile, here or on another host of the farm (the daemon has it)
                entry = cache.get(key, local_blob=False)
                if entry:
                    if store.has_blob(entry["layer"]["digest"]):
                        _share(job, store, settings, entry["layer"])
                    final.events.append(BlockCached(block=block, key=key, shared=True))
                    return BlockResult.from_cache(entry["layer"])
            _tell_host(redis, job.job)
            result = _build(job, store, cache, events, should_cancel, settings, final)
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


def _sweep_dead(store) -> None:
    """Remove the work dirs of blocks whose worker process died (SIGKILL, OOM).

    Their mounts died with their mount namespace; what is left is a plain directory that
    nothing trusts, named ``block-p<PID>-…`` after the process that made it.
    """
    tmp = Path(store.root) / "tmp"
    for d in tmp.glob("block-p*-*"):
        pid = d.name[len("block-p"):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            remove_tree(d, ignore_errors=True)


def _build(job: BlockJob, store, cache, events, should_cancel, settings,
           final: _Final) -> BlockResult:
    from minibox.builder import remote
    from minibox.sandbox import SandboxSpec, run_block
    from minibox.store.layertar import LayerInfo, commit_upper

    block = job.block
    daemon = None
    if job.is_remote(settings.data_root):
        daemon, job = remote.prepare(job, store, settings)
    events = final.log = _StartFirst(events, BlockStart(
        block=block, key=job.key, worker=f"{socket.gethostname()}:{os.getpid()}"))
    t0 = time.monotonic()
    _sweep_dead(store)
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
        remove_tree(tmp, ignore_errors=True)

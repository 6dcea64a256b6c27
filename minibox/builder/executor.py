"""Worker side of a build: execute one block and commit its layer.

Called by the thin Celery task ``minibox.builder.block``.  Content-addressed, so it is safe to
run twice: a Redis lock per cache key makes concurrent builds of the same key execute it
once (the second finds the entry the first wrote), and a worker killed mid-block leaves only
a temp dir that nothing trusts.  Build errors are returned, not raised, so they cross Celery
as plain JSON.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from minibox.builder.cache import BlockCache
from minibox.builder.events import EventLog, LineBuffer
from minibox.errors import Cancelled, MiniBoxError

LOCK_TTL = 6.0          # seconds; the holder refreshes it every LOCK_TTL / 3


def lock_key(key: str) -> str:
    return f"minibox:lock:block:{key}"


def cancel_key(job: str) -> str:
    return f"minibox:build:{job}:cancel"


@contextmanager
def _held(lock):
    """Keep a Redis lock alive while the block runs (a dead holder's lock expires)."""
    stop = threading.Event()

    def refresh():
        while not stop.wait(LOCK_TTL / 3):
            try:
                lock.reacquire()
            except Exception:   # lost or Redis gone: the block finishes; nothing to do
                return

    t = threading.Thread(target=refresh, daemon=True, name="lock-refresh")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        try:
            lock.release()
        except Exception:
            pass


def _acquire(lock, should_cancel) -> None:
    while not lock.acquire(blocking=True, blocking_timeout=0.25):
        if should_cancel():
            raise Cancelled("build cancelled")


def execute_block(payload: dict, *, store, redis, settings) -> dict:
    """Run one block; the outcome is returned AND appended to the job's event stream as a
    ``block_result`` event, so the daemon learns it without waiting on Celery's backend."""
    events = EventLog(redis, payload["job"])
    result = _execute(payload, store, redis, settings, events)
    events.emit("block_result", block=payload["block"], key=payload["key"], result=result)
    return result


def _execute(payload: dict, store, redis, settings, events: EventLog) -> dict:
    job, block, key = payload["job"], payload["block"], payload["key"]

    def should_cancel() -> bool:
        return bool(redis.exists(cancel_key(job)))

    try:
        if should_cancel():
            raise Cancelled("build cancelled")
        lock = redis.lock(lock_key(key), timeout=LOCK_TTL, thread_local=False)
        _acquire(lock, should_cancel)
        with _held(lock):
            cache = BlockCache(store, settings.cache_dir)
            if not payload.get("no_cache"):
                entry = cache.get(key)
                if entry:
                    _share(payload, store, settings, entry["layer"])
                    events.emit("block_cached", block=block, key=key, shared=True)
                    return {"ok": True, "layer": entry["layer"], "cached": True}
            return _build(payload, store, cache, events, should_cancel, settings)
    except MiniBoxError as e:
        tail = getattr(e, "tail", None) or []
        if not isinstance(e, Cancelled):
            events.emit("block_failed", block=block, error=e.to_dict(), tail=tail)
        return {"ok": False, "error": e.to_dict(), "tail": tail}


def _share(payload: dict, store, settings, layer: dict) -> None:
    """A worker on another machine found the block in its own cache: make sure the daemon
    has the layer too."""
    from minibox.builder import remote

    if remote.is_remote(payload, settings):
        daemon = remote.connect(payload)
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
            shutil.rmtree(d, ignore_errors=True)


def _build(payload, store, cache, events, should_cancel, settings) -> dict:
    from minibox.builder import remote
    from minibox.sandbox import SandboxSpec, run_block
    from minibox.store.layertar import LayerInfo, commit_upper

    block = payload["block"]
    daemon = remote.prepare(payload, store, settings) \
        if remote.is_remote(payload, settings) else None
    events.emit("block_start", block=block, key=payload["key"],
                worker=f"{socket.gethostname()}:{os.getpid()}")
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
            lower_dirs=dirs(payload["lowers"]), upper_dir=str(tmp / "upper"),
            work_dir=str(tmp / "work"), scratch_dir=str(tmp / "scratch"),
            steps=payload["steps"], context_dir=payload.get("context_dir"),
            copy_from={n: dirs(ls) for n, ls in payload.get("copy_from", {}).items()},
            network=payload.get("network", "build"))
        run_block(spec, on_output=lines.feed,
                  on_event=lambda e: events.emit("block_step", block=block, **e),
                  should_cancel=should_cancel)
        lines.flush()
        layer = commit_upper(store, tmp / "upper", compression=settings.layer_compression)
        if daemon is not None:
            daemon.push_blob(store, layer.digest)
        cache.put(payload["key"], block, layer.to_dict())
        took = time.monotonic() - t0
        events.emit("block_done", block=block, duration=took, size=layer.size,
                    digest=layer.digest, empty=layer.empty)
        return {"ok": True, "layer": layer.to_dict(), "cached": False, "duration": took}
    except MiniBoxError as e:
        lines.flush()
        e.tail = getattr(e, "tail", None) or lines.tail
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

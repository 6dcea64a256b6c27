"""Runtime tasks: thin wrappers over minibox.runtime.service, run by the ONE runtime worker.

Not acked late (starting a container twice is not harmless).  The messages are
minibox.wire.runtime's: a ``ContainerSpec`` in (validated by the daemon, decoded here),
a ``StartResult`` out.  Results are plain JSON: ``{"ok": value}`` or ``{"error": {kind,
message, hint}, "exit_code": n}``; the daemon turns an error back into the MiniBoxError
(minibox.runtime.remote).
"""

from __future__ import annotations

import logging
import signal as _signal
from functools import lru_cache

from celery.signals import worker_ready

from minibox.errors import MiniBoxError
from minibox.wire.codec import ProtocolError
from minibox.wire.queues import RUNTIME_QUEUE, runtime_task
from minibox.wire.runtime import ContainerSpec, StartResult
from minibox.workers.celery_app import app

log = logging.getLogger("minibox.runtime")


@lru_cache(maxsize=1)
def runtime():
    from minibox.runtime.service import Runtime
    return Runtime(app.minibox_settings.data_root)


def _call(fn, *args):
    try:
        return {"ok": fn(*args)}
    except MiniBoxError as e:
        return {"error": e.to_dict(), "exit_code": getattr(e, "code", None)}
    except (OSError, ProtocolError) as e:
        log.exception("runtime task failed")
        return {"error": {"kind": "internal", "message": f"runtime error: {e}", "hint": None}}


@app.task(track_started=False, name=runtime_task("run"))
def run(spec: dict, attach: bool = False) -> dict:
    def _run():
        st = runtime().run(ContainerSpec.from_wire(spec), attach)
        return StartResult.of_state(st, st.get("log_link")).to_wire()
    return _call(_run)


@app.task(track_started=False, name=runtime_task("create"))
def create(spec: dict) -> dict:
    return _call(lambda: runtime().create(ContainerSpec.from_wire(spec)))


@app.task(track_started=False, name=runtime_task("start"))
def start(cid: str) -> dict:
    return _call(lambda: StartResult.of_state(runtime().start(cid)).to_wire())


@app.task(track_started=False, name=runtime_task("kill"))
def kill(cids: list[str], sig: int = int(_signal.SIGKILL), manual: bool = False) -> dict:
    """``manual``: the user stops them (restart policies leave them stopped)."""
    def _kill():
        if manual:
            runtime().mark_stopped(cids)
        return {c: runtime().kill(c, sig) for c in cids}
    return _call(_kill)


@app.task(track_started=False, name=runtime_task("remove"))
def remove(cids: list[str], force: bool = False, volumes: bool = False) -> dict:
    def _rm():
        for c in cids:
            runtime().remove(c, force, volumes)
        return cids
    return _call(_rm)


@app.task(track_started=False, name=runtime_task("reconcile"))
def reconcile() -> dict:
    return _call(runtime().reconcile)


@app.task(track_started=False, name=runtime_task("ping"))
def ping() -> str:
    return "pong"


@worker_ready.connect
def _on_ready(sender=None, **_kw) -> None:
    """In the runtime worker only: reconcile after a restart, warm up, start health checks."""
    try:
        queues = {q.name for q in sender.task_consumer.queues}
    except AttributeError:
        return
    if RUNTIME_QUEUE not in queues:
        return
    rt = runtime()
    log.info("runtime worker ready: %s", rt.reconcile())
    from minibox.runtime import health_scheduler
    from minibox.runtime.start import minimon, spawn
    from minibox.runtime.security import seccomp
    seccomp.compile_filter()
    spawn.tini_fd()
    compiled = minimon.path(rt.data_root)
    if compiled is None:
        try:
            spawn.zygote().ensure()     # start the Python monitors' zygote now, not at the first run
        except OSError as e:
            log.warning("no zygote (containers fork from the worker): %s", e)
    log.info("container monitor: %s", compiled or "python (no C compiler)")
    health_scheduler.start_thread(rt.store, rt)

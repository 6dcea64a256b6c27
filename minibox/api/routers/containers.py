"""/containers: run, list, inspect, logs, wait, stop, kill, start, restart, rm, stats, exec.

Mutations go to the runtime worker (Celery queue ``runtime``); reads come straight from the
container records and cgroups (no worker round trip).  Streams are Docker-style
multiplexed frames (see minibox.runtime.io.streams) when ``mux=1``.
"""

from __future__ import annotations

import os
import signal as _signal
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from minibox.api.deps import StateStoreDep, celery_client, state_store
from minibox.api.routers import tty_sessions
from minibox.api.streaming import mux_guard
from minibox.errors import Conflict, UserError
from minibox.runtime import query
from minibox.runtime.io import streams
from minibox.runtime.remote import call
from minibox.runtime.limits.stats import Sampler
from minibox.wire.api import ContainerRef, ExecId, ExecRequest, RunRequest, StopRequest
from minibox.wire.runtime import ContainerSpec, StartResult

router = APIRouter(prefix="/containers", tags=["containers"])
_sampler = Sampler()
OCTET = "application/octet-stream"
Ref = Annotated[ContainerRef, Path(description="a container's name, id or id prefix")]
Eid = Annotated[ExecId, Path(description="an exec session's id")]
Seconds = Annotated[float, Query(ge=0, le=86400)]
TermSize = Annotated[int, Query(ge=1, le=65535)]


def _ids(request: Request, refs: list[str]) -> list[str]:
    store = state_store(request)
    return [store.resolve(r) for r in refs]


# --- create and run --------------------------------------------------------------------
@router.post("")
def run(request: Request, store: StateStoreDep, req: RunRequest, start: bool = True, attach: bool = False):
    """Create a container from a RunRequest (image, command, env, volumes, memory, cpus,
    ...); with ``start`` (default) start it too.  Returns its id, name and warnings.
    ``attach``: stream its output (multiplexed) until it exits, ending with an exit frame;
    the id is in the X-Container-Id header."""
    from minibox.runtime.spec import from_request

    # what the values mean: checked here, before it is queued; the worker takes it as is
    spec = from_request(req.to_wire())
    if attach:
        return _run_attached(request, spec)
    if start:
        st = StartResult.from_wire(call(celery_client(request), "run", spec.to_wire()))
        return {"id": st.id, "name": st.name, "warnings": st.warnings}
    cid = call(celery_client(request), "create", spec.to_wire())
    return {"id": cid, "name": store.load(cid).name, "warnings": []}


def _run_attached(request: Request, spec: ContainerSpec) -> StreamingResponse:
    """One worker round trip (create + start); the worker hands the log over through a
    link made before the start, so none of the output is lost (see Runtime.run)."""
    store = state_store(request)
    st = StartResult.from_wire(call(celery_client(request), "run", spec.to_wire(), True))
    cid = st.id
    f = streams.open_attach_log(store, st)
    watch = streams.ExitWatch(store, cid)
    gen = streams.log_stream(store, cid, follow=True, mux=True, exit_trailer=True, f=f,
                             watch=watch)
    gen = mux_guard(gen, f"the output of container {cid[:12]}")
    headers = {"X-Container-Id": cid, "X-Container-Name": st.name}
    return StreamingResponse(gen, media_type=OCTET, headers=headers)


@router.get("")
def list_(request: Request, store: StateStoreDep, all: bool = False,
          filter: Annotated[list[Annotated[str, Query(max_length=256)]],
                            Query(max_length=64)] = []) -> list:
    filters: dict[str, list[str]] = {}
    for f in filter:
        key, sep, value = f.partition("=")
        if not sep or key not in query.FILTER_KEYS:
            raise UserError(f"invalid filter {f!r}",
                            hint="use KEY=VALUE with KEY one of " + ", ".join(query.FILTER_KEYS))
        filters.setdefault(key, []).append(value)
    return query.list_containers(store, all, filters)


@router.get("/stats")
def stats_all(request: Request, store: StateStoreDep, all: bool = False) -> list:
    out = []
    for rec in store.all():
        st = rec.effective()
        if all or st["status"] == "running":
            out.append(_sampler.sample(st))
    return out


@router.get("/{ref}")
def inspect(request: Request, store: StateStoreDep, ref: Ref) -> dict:
    return query.inspect(store, ref)


@router.get("/{ref}/stats")
def stats(request: Request, store: StateStoreDep, ref: Ref) -> dict:
    rec = store.load(store.resolve(ref))
    return _sampler.sample(rec.effective())


# --- lifecycle -------------------------------------------------------------------------
@router.post("/{ref}/start")
def start(request: Request, store: StateStoreDep, ref: Ref) -> dict:
    cid = store.resolve(ref)
    st = StartResult.from_wire(call(celery_client(request), "start", cid))
    return {"id": cid, "status": st.status}


@router.post("/{ref}/wait")
def wait(request: Request, store: StateStoreDep, ref: Ref, timeout: Seconds | None = None) -> dict:
    cid = store.resolve(ref)
    st = query.wait_exited(store, [cid], timeout)[cid]
    return {"id": cid, "status": st["status"], "exit_code": st.get("exit_code"),
            "oom_killed": st.get("oom_killed", False)}


def _stop(request: Request, cids: list[str], t: float) -> dict:
    store = state_store(request)
    call(celery_client(request), "kill", cids, int(_signal.SIGTERM), True)
    states = query.wait_exited(store, cids, max(0.0, t))
    late = [c for c, st in states.items() if st.get("status") == "running"]
    if late:
        call(celery_client(request), "kill", late, int(_signal.SIGKILL))
        states.update(query.wait_exited(store, late, 10.0))
    return {c: {"status": st.get("status"), "exit_code": st.get("exit_code"),
                "killed": c in late} for c, st in states.items()}


@router.post("/stop")
def stop_many(request: Request, body: StopRequest) -> dict:
    """Stop several containers at once: SIGTERM to all, SIGKILL to the ones left after t."""
    return _stop(request, _ids(request, body.ids), body.t)


@router.post("/{ref}/stop")
def stop(request: Request, ref: Ref, t: Seconds = 10.0) -> dict:
    return _stop(request, _ids(request, [ref]), t)


@router.post("/{ref}/restart")
def restart(request: Request, ref: Ref, t: Seconds = 10.0) -> dict:
    cids = _ids(request, [ref])
    _stop(request, cids, t)
    st = StartResult.from_wire(call(celery_client(request), "start", cids[0]))
    return {"id": cids[0], "status": st.status}


@router.post("/{ref}/kill")
def kill(request: Request, store: StateStoreDep, ref: Ref,
         signal: Annotated[str, Query(max_length=32)] = "SIGKILL") -> dict:
    cid = store.resolve(ref)
    sig = _parse_signal(signal)
    done = call(celery_client(request), "kill", [cid], sig, sig in _STOPPING)
    if not done.get(cid):
        raise UserError(f"container {ref} is not running")
    return {"id": cid, "signal": sig}


# a kill with one of these is the user stopping the container (restart policies respect it)
_STOPPING = {int(_signal.SIGKILL), int(_signal.SIGTERM), int(_signal.SIGINT),
             int(_signal.SIGQUIT)}


def _parse_signal(text: str) -> int:
    t = str(text).strip().upper()
    if t.isdigit() and 0 < int(t) < 65:
        return int(t)
    name = t if t.startswith("SIG") else "SIG" + t
    try:
        return int(_signal.Signals[name])
    except KeyError:
        raise UserError(f"invalid signal {text!r}", hint="e.g. SIGTERM, TERM, HUP, 9") from None


@router.delete("/{ref}")
def remove(request: Request, store: StateStoreDep, ref: Ref, force: bool = False, volumes: bool = False) -> dict:
    """Remove a container; ``volumes``: its anonymous volumes too (never named ones)."""
    cid = store.resolve(ref)
    call(celery_client(request), "remove", [cid], force, volumes)
    return {"id": cid, "removed": True}


# --- output ----------------------------------------------------------------------------
@router.get("/{ref}/logs")
def logs(request: Request, store: StateStoreDep, ref: Ref, follow: bool = False,
         tail: Annotated[int, Query(ge=-1, le=1 << 40)] | None = None,
         since: Annotated[float, Query(ge=0, le=1 << 40)] = 0.0, timestamps: bool = False,
         mux: bool = False, exit: bool = False):
    """The container's output.  ``follow``: until it exits; ``exit`` (with follow and mux):
    end with an exit frame; ``since``: unix seconds."""
    cid = store.resolve(ref)
    gen = streams.log_stream(store, cid, follow=follow, tail=tail, since_ns=int(since * 1e9),
                             timestamps=timestamps, mux=mux, exit_trailer=exit and follow and mux)
    if mux:
        gen = mux_guard(gen, f"the logs of container {cid[:12]}")
    return StreamingResponse(gen, media_type=OCTET if mux else "text/plain; charset=utf-8")


@router.post("/{ref}/exec")
def exec_(request: Request, store: StateStoreDep, ref: Ref, body: ExecRequest):
    """Run a command in the container: ``{cmd, env, workdir, user, tty, interactive}``.
    Without tty the answer streams multiplexed output; with ``interactive`` its stdin is a
    pipe fed by POST /containers/exec/{X-Exec-Id}/stdin (else /dev/null).  With tty it
    returns an exec session id (see /containers/exec/{id}/...)."""
    from minibox.runtime.exec import exec_spec
    rec = store.load(store.resolve(ref), with_config=True)
    spec = exec_spec(rec, body.cmd, body.env, body.workdir, body.user, body.tty)
    if spec["tty"]:
        return {"exec_id": tty_sessions.start_exec(spec)}
    import subprocess
    from minibox.runtime.exec import spawn_exec
    stdin = body.interactive
    proc = spawn_exec(spec, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    what = f"exec in container {rec.name}"
    if not stdin:
        return StreamingResponse(mux_guard(streams.exec_stream(proc), what), media_type=OCTET)
    eid = os.urandom(8).hex()
    tty_sessions.register_exec_stdin(eid, proc.stdin)
    gen = mux_guard(_then(streams.exec_stream(proc), tty_sessions.drop_exec_stdin, eid), what)
    return StreamingResponse(gen, media_type=OCTET, headers={"X-Exec-Id": eid})


def _then(gen, cleanup, *args):
    try:
        yield from gen
    finally:
        cleanup(*args)


# --- interactive sessions (container -t, exec -t) -----------------------------------------
@router.get("/exec/{eid}/output")
def exec_output(eid: Eid):
    return StreamingResponse(tty_sessions.exec_output(eid), media_type=OCTET)


@router.post("/exec/{eid}/input")
async def exec_input(eid: Eid, request: Request) -> dict:
    tty_sessions.exec_input(eid, await request.body())
    return {}


@router.post("/exec/{eid}/resize")
def exec_resize(eid: Eid, h: TermSize, w: TermSize) -> dict:
    tty_sessions.exec_resize(eid, h, w)
    return {}


@router.post("/exec/{eid}/stdin")
async def exec_stdin(eid: Eid, request: Request) -> dict:
    """Stream the body into an exec's stdin (started with ``interactive``); its end (or
    the client going away) is the command's EOF."""
    await tty_sessions.relay_exec_stdin(eid, request.stream())
    return {}


@router.post("/{ref}/attach/stdin")
async def attach_stdin(request: Request, store: StateStoreDep, ref: Ref) -> dict:
    """Stream the body into the stdin of a container started with -i (no -t); its end (or
    the client going away) closes the container's stdin, as docker's run -i does."""
    cid = store.resolve(ref)
    rec = store.load(cid, with_config=True)
    spec = (rec.config or {}).get("spec", {}) if rec else {}
    if spec.get("tty") or not spec.get("interactive"):
        raise Conflict("the container has no stdin to attach to",
                       hint="it needs -i without -t (with -t, send input to /attach/input)")
    await tty_sessions.relay_container_stdin(store, cid, request.stream())
    return {}


@router.post("/{ref}/attach/input")
async def attach_input(request: Request, store: StateStoreDep, ref: Ref) -> dict:
    tty_sessions.container_input(store, store.resolve(ref), await request.body())
    return {}


@router.post("/{ref}/resize")
def resize(request: Request, store: StateStoreDep, ref: Ref, h: TermSize, w: TermSize) -> dict:
    tty_sessions.container_resize(store, store.resolve(ref), h, w)
    return {}

"""/builds: submit a build (context upload or daemon-side path), follow it, cancel it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from minibox.builder.events import EventLog
from minibox.builder.jobs import FINAL
from minibox.builder.scheduler import BuildRequest
from minibox.errors import NotFound, UserError

router = APIRouter(prefix="/builds", tags=["builds"])
TERMINAL_EVENTS = {"job_done", "job_failed", "job_cancelled"}


def _services(request: Request):
    return request.app.state.services


class PathBuild(BaseModel):
    tag: str
    context: str
    file: str = "MiniBox"
    target: str | None = None
    no_cache: bool = False
    network: str = "build"


@router.post("", status_code=202)
def create_build(request: Request,
                 context: Annotated[UploadFile, File(description="the build context, a tar")],
                 tag: Annotated[str, Form()],
                 file: Annotated[str, Form()] = "MiniBox",
                 minibox: Annotated[str | None, Form()] = None,
                 target: Annotated[str | None, Form()] = None,
                 no_cache: Annotated[bool, Form()] = False,
                 network: Annotated[str, Form(description="build (default), none or host")]
                 = "build") -> dict:
    """Build from an uploaded context tar (what `minibox build` sends)."""
    from minibox.builder.context import unpack_context

    s = _services(request)
    ctx = _new_context_dir(s)
    req = BuildRequest(tag=tag, text="", filename=file, context_dir=ctx, target=target or None,
                       no_cache=no_cache, network=network, owns_context=True)
    try:
        unpack_context(context.file, ctx)
        req.text = minibox if minibox is not None else _read_minibox(ctx, file)
    except BaseException:
        s.builds._drop_context(req)
        raise
    return s.builds.submit(req)


@router.post("/path", status_code=202)
def create_build_from_path(request: Request, body: PathBuild) -> dict:
    """Build from a directory on the daemon's machine, under MINIBOX_BUILD_PREFIXES."""
    from minibox.builder.context import pack_context, unpack_context

    s = _services(request)
    src = _allowed_context(body.context, s.settings.build_prefixes)
    text = _read_minibox(src, body.file)
    # Snapshot the context the same way an upload is made (.miniboxignore applied), so the
    # keys and the copies see exactly the same files even if the directory changes later.
    ctx = _new_context_dir(s)
    req = BuildRequest(tag=body.tag, text=text, filename=body.file, context_dir=ctx,
                       target=body.target, no_cache=body.no_cache, network=body.network,
                       owns_context=True)
    try:
        with tempfile.TemporaryFile(dir=s.settings.contexts_dir) as tar:
            pack_context(str(src), tar)
            tar.seek(0)
            unpack_context(tar, ctx)
    except BaseException:
        s.builds._drop_context(req)
        raise
    return s.builds.submit(req)


def _new_context_dir(s) -> Path:
    root = s.settings.contexts_dir
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ctx-", dir=root))


def _allowed_context(path: str, prefixes: list[str]) -> Path:
    real = Path(os.path.realpath(path))
    if not real.is_dir():
        raise UserError(f"build context '{path}' is not a directory on the daemon's machine")
    for p in prefixes:
        pr = os.path.realpath(p)
        if str(real) == pr or str(real).startswith(pr.rstrip("/") + "/"):
            return real
    raise UserError(f"build context '{path}' is not under an allowed prefix",
                    hint="allowed: " + ", ".join(prefixes) + " (MINIBOX_BUILD_PREFIXES)")


def _read_minibox(ctx: Path, name: str) -> str:
    path = (ctx / name)
    if ".." in Path(name).parts or Path(name).is_absolute():
        raise UserError(f"the MiniBox file '{name}' must be inside the build context")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no MiniBox file '{name}' in the build context",
                        hint="create one, or name another with -f") from None
    except OSError as e:
        raise UserError(f"cannot read the MiniBox file '{name}': {e.strerror}") from None
    return data.decode("utf-8", "replace")


@router.get("")
def list_builds(request: Request, limit: int = 50) -> list[dict]:
    return _services(request).builds.list(limit)


@router.get("/{job_id}")
def get_build(request: Request, job_id: str) -> dict:
    return _services(request).builds.get(job_id)


@router.get("/{job_id}/context")
def build_context(request: Request, job_id: str) -> StreamingResponse:
    """The job's build context as a tar, for build workers on other machines."""
    from minibox.builder.context import pack_context

    rec = _services(request).builds.get(job_id)
    ctx = rec.get("context") or ""
    if rec["status"] in FINAL or not os.path.isdir(ctx):
        raise NotFound(f"the context of build job '{job_id}' is gone (the job has ended)")
    spool = tempfile.TemporaryFile()
    pack_context(ctx, spool)
    spool.seek(0)

    def chunks():
        with spool:
            while data := spool.read(1 << 20):
                yield data

    return StreamingResponse(chunks(), media_type="application/x-tar")


@router.post("/{job_id}/cancel")
def cancel_build(request: Request, job_id: str) -> dict:
    return _services(request).builds.cancel(job_id)


@router.get("/{job_id}/events")
def build_events(request: Request, job_id: str, since: str = "0",
                 follow: bool = True) -> StreamingResponse:
    """The job's events as NDJSON, from ``since`` (a stream id); with follow, until it ends."""
    s = _services(request)
    rec = s.builds.get(job_id)   # 404 for an unknown job
    log = EventLog(s.redis, job_id)

    def gen():
        cursor, finished = since, rec["status"] in FINAL
        while True:
            entries = log.read(cursor, block_ms=None if not follow else 1000)
            for eid, ev in entries:
                cursor = eid
                ev["id"] = eid
                yield json.dumps(ev) + "\n"
                if ev.get("type") in TERMINAL_EVENTS:
                    return
            if not follow or (finished and not entries):
                return
            if not entries and s.builds.get(job_id)["status"] in FINAL:
                finished = True

    return StreamingResponse(gen(), media_type="application/x-ndjson")

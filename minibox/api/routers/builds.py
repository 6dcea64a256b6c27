"""/builds: submit a build (context upload or daemon-side path), follow it, cancel it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path as PathParam, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from minibox.api.deps import ServicesDep
from minibox.api.streaming import ndjson_guard
from minibox.builder.events import EventLog
from minibox.builder.jobs import FINAL
from minibox.builder.scheduler import BuildRequest
from minibox.errors import NotFound, UserError
from minibox.wire.api import MAX_TIMESTAMP, PLATFORM_PATTERN, BuildEventsCursor, JobId, PathBuild
from minibox.wire.events import TERMINAL_EVENTS

MAX_MINIBOX_BYTES = 16 << 20
JobIdParam = Annotated[JobId, PathParam(description="a build job's id")]
FormText = Annotated[str, Form(max_length=4096, pattern=r"^[^\x00-\x1f\x7f]*$")]

router = APIRouter(prefix="/builds", tags=["builds"])


@router.post("", status_code=202)
def create_build(request: Request, s: ServicesDep,
                 context: Annotated[UploadFile, File(description="the build context: a tar, "
                                                     "plain or gzip/bzip2/xz compressed")],
                 tag: Annotated[str, Form(min_length=1, max_length=256,
                                          pattern=r"^[^\x00-\x1f\x7f]*$")],
                 file: FormText = "MiniBox",
                 minibox: Annotated[str | None, Form(max_length=MAX_MINIBOX_BYTES)] = None,
                 # Annotated outside the Optional: `FormText | None` would lose Form() and
                 # make the target a query parameter, silently ignored
                 target: Annotated[str | None, Form(max_length=4096,
                                                    pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
                 no_cache: Annotated[bool, Form()] = False,
                 timestamp: Annotated[int | None, Form(ge=0, le=MAX_TIMESTAMP)] = None,
                 pull: Annotated[Literal["missing", "always", "never"], Form()] = "missing",
                 network: Annotated[Literal["build", "none", "host"],
                                    Form(description="the RUN steps' network")] = "build",
                 platform: Annotated[str | None, Form(
                     max_length=64, pattern=PLATFORM_PATTERN,
                     description="OS/ARCH[/VARIANT] of the build workers (default: the "
                                 "base image's)")] = None
                 ) -> dict:
    """Build from an uploaded context tar (what `minibox build` sends); ``minibox``: the
    MiniBox file's text (else ``file`` is read from the context)."""
    from minibox.builder.context import unpack_context
    ctx = _new_context_dir(s)
    req = BuildRequest(tag=tag, text="", filename=file, context_dir=ctx, target=target or None,
                       no_cache=no_cache, timestamp=timestamp, owns_context=True, pull=pull,
                       network=network, platform=platform or None)
    try:
        unpack_context(context.file, ctx, s.settings.context_limits)
        req.text = minibox if minibox is not None else _read_minibox(ctx, file)
    except BaseException:
        s.builds.drop_context(req)
        raise
    return s.builds.submit(req)


@router.post("/path", status_code=202)
def create_build_from_path(request: Request, s: ServicesDep, body: PathBuild) -> dict:
    """Build from a directory on the daemon's machine, under MINIBOX_BUILD_PREFIXES."""
    from minibox.builder.context import pack_context, unpack_context
    src = _allowed_context(body.context, s.settings.build_prefixes)
    # Snapshot the context the same way an upload is made (.miniboxignore applied), so the
    # keys and the copies see exactly the same files even if the directory changes later;
    # the MiniBox file is read from the snapshot, inside it, like any file of a context.
    ctx = _new_context_dir(s)
    req = BuildRequest(tag=body.tag, text="", filename=body.file, context_dir=ctx,
                       target=body.target, no_cache=body.no_cache, timestamp=body.timestamp,
                       owns_context=True, pull=body.pull, network=body.network,
                       platform=body.platform)
    limits = s.settings.context_limits
    try:
        with tempfile.TemporaryFile(dir=s.settings.contexts_dir) as tar:
            pack_context(str(src), tar, limits)
            tar.seek(0)
            unpack_context(tar, ctx, limits)
        req.text = _read_minibox(ctx, body.file)
    except BaseException:
        s.builds.drop_context(req)
        raise
    return s.builds.submit(req)


def _new_context_dir(s) -> Path:
    root = s.settings.contexts_dir
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ctx-", dir=root))


def _allowed_context(path: str, prefixes: list[str]) -> Path:
    try:
        real = Path(os.path.realpath(path))
        is_dir = real.is_dir()
    except OSError as e:        # a name too long, a loop of links
        raise UserError(f"build context '{path[:200]}': {e.strerror}") from None
    if not is_dir:
        raise UserError(f"build context '{path}' is not a directory on the daemon's machine")
    for p in prefixes:
        pr = os.path.realpath(p)
        if str(real) == pr or str(real).startswith(pr.rstrip("/") + "/"):
            return real
    raise UserError(f"build context '{path}' is not under an allowed prefix",
                    hint="allowed: " + ", ".join(prefixes) + " (MINIBOX_BUILD_PREFIXES)")


def _read_minibox(ctx: Path, name: str) -> str:
    """The MiniBox file ``name`` of the (daemon-owned snapshot of the) context, resolved
    inside it: see ``read_context_file``."""
    from minibox.builder.contextfile import printable, read_context_file

    try:
        data = read_context_file(str(ctx), name, "the MiniBox file", MAX_MINIBOX_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"no MiniBox file '{printable(name)}' in the build context",
                        hint="create one, or name another with -f") from None
    except OSError as e:
        raise UserError(f"cannot read the MiniBox file '{printable(name)}': "
                        f"{e.strerror}") from None
    return data.decode("utf-8", "replace")


@router.get("")
def list_builds(request: Request, s: ServicesDep,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
    return s.builds.list(limit)


@router.get("/{job_id}")
def get_build(request: Request, s: ServicesDep, job_id: JobIdParam) -> dict:
    return s.builds.get(job_id)


@router.get("/{job_id}/context")
def build_context(request: Request, s: ServicesDep, job_id: JobIdParam) -> StreamingResponse:
    """The job's build context as a tar, for build workers on other machines."""
    from minibox.builder.context import pack_context

    rec = s.builds.get(job_id)
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
def cancel_build(request: Request, s: ServicesDep, job_id: JobIdParam) -> dict:
    return s.builds.cancel(job_id)


#: the shortest time between two chunks of a followed job's events (seconds)
FOLLOW_GAP = 0.05


@router.get("/{job_id}/events")
def build_events(request: Request, s: ServicesDep, job_id: JobIdParam,
                 since: Annotated[BuildEventsCursor, Query()] = "0",
                 follow: bool = True) -> StreamingResponse:
    """The job's events as NDJSON, from ``since`` (a stream id); with follow, until it ends."""
    rec = s.builds.get(job_id)   # 404 for an unknown job
    log = EventLog(s.redis, job_id)

    def gen():
        # one chunk per FOLLOW_GAP at most, not one per read of the stream: each chunk is a
        # hop from the thread pool to the event loop and a write to the client, and a
        # 200-block build appends over a thousand events in some hundreds of round trips.
        # What comes sooner is read and held until then; the job's end goes out at once.
        cursor, finished = since, rec["status"] in FINAL
        lines: list[str] = []
        sent = 0.0
        while True:
            due = sent + FOLLOW_GAP
            wait = 1000 if not lines else max(1, int((due - time.monotonic()) * 1000))
            entries = log.read(cursor, block_ms=wait if follow else None)
            for eid, ev in entries:
                cursor = eid
                ev["id"] = eid
                lines.append(json.dumps(ev) + "\n")
                if ev.get("type") in TERMINAL_EVENTS:
                    yield "".join(lines)
                    return
            if lines and (not follow or not entries or time.monotonic() >= due):
                yield "".join(lines)
                lines, sent = [], time.monotonic()
            if not follow or (finished and not entries):
                return
            if not entries and wait == 1000 and s.builds.get(job_id)["status"] in FINAL:
                finished = True

    return StreamingResponse(ndjson_guard(gen(), f"the events of build job {job_id}"),
                             media_type="application/x-ndjson")

"""Build jobs in the daemon: accept, run (one thread each), report, cancel, list.

A job's record lives in Redis (``wire.keys.job_record_key``), its events in a Redis stream,
so the API can answer for it from any process and a client can follow it from any point.  The
MiniBox file is parsed when the job is submitted: a malformed file is a 400 with file:line,
not a queued job that fails later.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import threading
import time
from pathlib import Path

from redis.exceptions import RedisError

from minibox import refs
from minibox.builder.events import EventLog
from minibox.builder.plan import check_layer_stacks
from minibox.builder.scheduler import Build, BuildRequest
from minibox.sandbox.spec import check_network
from minibox.errors import Cancelled, MiniBoxError, NotFound
from minibox.rmtree import remove_tree
from minibox.wire.events import (CancelRequested, JobCancelled, JobDone, JobFailed, JobQueued,
                                 JobResumed, JobStart)
from minibox.wire.keys import (BUILDS_INDEX, job_cancel_key, job_hosts_key, job_record_key,
                               job_tasks_key)

log = logging.getLogger("minibox.builds")
RECORD_TTL = 7 * 86400
BROKER_WAIT = 120.0      # how long a build that lost Redis waits for it to write its end
FINAL = ("done", "failed", "cancelled")


class BuildManager:
    def __init__(self, services):
        self.s = services
        self.redis = services.redis
        self.instance = secrets.token_hex(8)   # this daemon's life; jobs remember it

    def recover(self) -> int:
        """Take over the jobs a previous daemon left queued or running (it was killed: its
        threads are gone, its Redis and workers were adopted).  A job whose request and
        context are still there is resumed -- blocks already built are cache hits, blocks
        still running on a worker are waited for through their key's lock -- and any other
        is failed with the reason.  Returns how many jobs were taken over."""
        n = 0
        for raw in self.redis.zrange(BUILDS_INDEX, 0, -1):
            job_id = raw.decode()
            key = job_record_key(job_id)
            status, owner = self.redis.hmget(key, "status", "daemon")
            if status not in (b"queued", b"running") or owner == self.instance.encode():
                continue
            n += 1
            events = EventLog(self.redis, job_id)
            req = _request_from(self.redis.hget(key, "request"))
            mb = self._reparse(req)
            if mb is None:
                if req is not None and req.owns_context:
                    remove_tree(req.context_dir, ignore_errors=True)
                self._update(job_id, status="failed", finished=time.time(),
                             error="the daemon restarted during the build and its context "
                                   "is gone")
                events.emit(JobFailed(error={
                    "kind": "build", "hint": "build again",
                    "message": "the daemon restarted during the build and its context is gone"}))
                continue
            log.warning("resuming build %s after a daemon restart", job_id)
            self._update(job_id, daemon=self.instance)
            events.emit(JobResumed(id=job_id, reason="the daemon restarted"))
            threading.Thread(target=self._run, args=(job_id, req, mb), daemon=True,
                             name=f"build-{job_id}").start()
        return n

    @staticmethod
    def _reparse(req):
        from minibox.mbfile.parser import parse

        if req is None or not req.context_dir.is_dir():
            return None
        try:
            return parse(req.text, req.filename)
        except MiniBoxError:
            return None

    # --- submit ---------------------------------------------------------------
    def submit(self, req: BuildRequest) -> dict:
        from minibox.mbfile.parser import parse

        try:
            req.tag = refs.normalize(req.tag)
            check_network(req.network)
            mb = parse(req.text, req.filename)
            # an unknown target, or NEED chains too deep whatever the base, fail here,
            # before queueing
            check_layer_stacks(mb, 0, req.target)
        except MiniBoxError:
            self.drop_context(req)
            raise
        job_id = secrets.token_hex(6)
        rec = {"id": job_id, "tag": req.tag, "status": "queued", "created": time.time(),
               "file": req.filename, "target": req.target or "", "error": "",
               "daemon": self.instance, "context": str(req.context_dir),
               "request": _request_to(req)}
        self._save(job_id, rec)
        self.redis.zadd(BUILDS_INDEX, {job_id: rec["created"]})
        EventLog(self.redis, job_id).emit(JobQueued(id=job_id, tag=req.tag))
        t = threading.Thread(target=self._run, args=(job_id, req, mb), daemon=True,
                             name=f"build-{job_id}")
        t.start()
        return rec

    def _run(self, job_id: str, req: BuildRequest, mb) -> None:
        events = EventLog(self.redis, job_id)
        self._update(job_id, status="running", started=time.time(), blocks=len(mb.blocks))
        events.emit(JobStart(id=job_id, tag=req.tag, blocks=len(mb.blocks)))
        try:
            result = Build(self.s, job_id, req, mb).run()
            self._update(job_id, status="done", digest=result["digest"], finished=time.time())
            events.emit(JobDone(tag=req.tag, **result))
        except Cancelled as e:
            self._update(job_id, status="cancelled", error=e.message, finished=time.time())
            events.emit(JobCancelled(error=e.to_dict()))
        except MiniBoxError as e:
            self._update(job_id, status="failed", error=e.message, finished=time.time())
            events.emit(JobFailed(error=e.to_dict()))
        except RedisError as e:   # the broker went away (restarted, cut off) mid-build
            self._fail_after_broker_loss(job_id, req, e)
        except Exception as e:   # a bug: say so plainly, keep the traceback in the log
            log.exception("build %s crashed", job_id)
            err = {"kind": "internal", "message": f"internal error: {e!r}", "hint":
                   "this is a bug in miniboxd; the daemon log has the traceback"}
            self._update(job_id, status="failed", error=err["message"], finished=time.time())
            events.emit(JobFailed(error=err))
        finally:
            self.drop_context(req)

    def _fail_after_broker_loss(self, job_id: str, req: BuildRequest, err: Exception) -> None:
        """Fail the job with the reason once Redis answers again (up to BROKER_WAIT): its
        queued blocks, results and events may be gone with it, so the build cannot be
        followed to its end, but it must end.  A Redis that came back empty gets the job's
        record again, so `builds ls` shows how it ended."""
        log.warning("build %s: lost the broker: %s", job_id, err)
        error = {"kind": "build", "message": f"the farm's Redis went away during the build "
                 f"({err})", "hint": "build again; blocks already built are cache hits"}
        deadline = time.monotonic() + BROKER_WAIT
        while True:
            try:
                self._update(job_id, id=job_id, tag=req.tag, status="failed",
                             error=error["message"], finished=time.time())
                self.redis.expire(job_record_key(job_id), RECORD_TTL)
                self.redis.zadd(BUILDS_INDEX, {job_id: time.time()}, nx=True)
                EventLog(self.redis, job_id).emit(JobFailed(error=error))
                return
            except RedisError:
                if time.monotonic() > deadline:
                    log.error("build %s: Redis did not come back in %ss; its record "
                              "could not be ended", job_id, BROKER_WAIT)
                    return
                time.sleep(0.5)

    @staticmethod
    def drop_context(req: BuildRequest) -> None:
        """Remove a context the daemon unpacked for ``req`` (a build refused before it was
        queued, or a finished one)."""
        if req.owns_context:
            remove_tree(req.context_dir, ignore_errors=True)

    # --- records ----------------------------------------------------------------
    def _save(self, job_id: str, rec: dict) -> None:
        key = job_record_key(job_id)
        self.redis.hset(key, mapping={k: str(v) for k, v in rec.items()})
        self.redis.expire(key, RECORD_TTL)

    def _update(self, job_id: str, **fields) -> None:
        self.redis.hset(job_record_key(job_id), mapping={k: str(v) for k, v in fields.items()})

    def get(self, job_id: str) -> dict:
        raw = self.redis.hgetall(job_record_key(job_id))
        if not raw:
            raise NotFound(f"no build job '{job_id}'", hint="`minibox builds ls` lists them")
        rec = {k.decode(): v.decode() for k, v in raw.items()}
        rec.pop("request", None)      # for resuming only (it holds the whole MiniBox text)
        rec["hosts"] = sorted(h.decode() for h in self.redis.smembers(job_hosts_key(job_id)))
        for f in ("created", "started", "finished"):
            if rec.get(f):
                rec[f] = float(rec[f])
        return rec

    def list(self, limit: int = 50) -> list[dict]:
        ids = self.redis.zrevrange(BUILDS_INDEX, 0, limit - 1)
        out = []
        for raw in ids:
            try:
                out.append(self.get(raw.decode()))
            except NotFound:
                self.redis.zrem(BUILDS_INDEX, raw)
        return out

    def cancel(self, job_id: str) -> dict:
        rec = self.get(job_id)
        if rec["status"] in FINAL:
            return rec
        self.redis.set(job_cancel_key(job_id), "cancelled", ex=86400)
        for tid in self.redis.smembers(job_tasks_key(job_id)):
            self.s.celery.control.revoke(tid.decode())
        EventLog(self.redis, job_id).emit(CancelRequested())
        return self.get(job_id)


def _request_to(req: BuildRequest) -> str:
    """The request as JSON, so that a daemon started after this one died can resume it."""
    return json.dumps({k: str(v) if isinstance(v, Path) else v
                       for k, v in dataclasses.asdict(req).items()})


def _request_from(raw: bytes | None) -> BuildRequest | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        names = {f.name for f in dataclasses.fields(BuildRequest)}
        req = BuildRequest(**{k: v for k, v in data.items() if k in names})
    except (ValueError, TypeError):
        return None
    req.context_dir = Path(req.context_dir)
    return req

"""Build jobs in the daemon: accept, run (one thread each), report, cancel, list.

A job's record lives in Redis (``minibox:build:<id>``), its events in a Redis stream, so the
API can answer for it from any process and a client can follow it from any point.  The
MiniBox file is parsed when the job is submitted: a malformed file is a 400 with file:line,
not a queued job that fails later.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time

from minibox import graph, refs
from minibox.builder.events import EventLog
from minibox.builder.executor import cancel_key
from minibox.builder.scheduler import Build, BuildRequest
from minibox.sandbox.spec import check_network
from minibox.errors import Cancelled, MiniBoxError, NotFound

log = logging.getLogger("minibox.builds")
INDEX = "minibox:builds"
RECORD_TTL = 7 * 86400
FINAL = ("done", "failed", "cancelled")


def record_key(job_id: str) -> str:
    return f"minibox:build:{job_id}"


class BuildManager:
    def __init__(self, services):
        self.s = services
        self.redis = services.redis
        self.instance = secrets.token_hex(8)   # this daemon's life; jobs remember it

    def recover(self) -> int:
        """Fail the jobs a previous daemon left queued or running (its threads are gone).
        Only matters with an external broker: the embedded Redis starts empty."""
        n = 0
        for job_id in self.redis.zrange(INDEX, 0, -1):
            key = record_key(job_id.decode())
            status, owner = self.redis.hmget(key, "status", "daemon")
            if status in (b"queued", b"running") and owner != self.instance.encode():
                self.redis.hset(key, mapping={"status": "failed", "finished": str(time.time()),
                                              "error": "the daemon restarted during the build"})
                EventLog(self.redis, job_id.decode()).emit("job_failed", error={
                    "kind": "build", "message": "the daemon restarted during the build",
                    "hint": "build again"})
                n += 1
        return n

    # --- submit ---------------------------------------------------------------
    def submit(self, req: BuildRequest) -> dict:
        from minibox.mbfile.parser import parse

        try:
            req.tag = refs.normalize(req.tag)
            check_network(req.network)
            mb = parse(req.text, req.filename)
            if req.target:
                graph.waves(mb, req.target)   # an unknown target fails here, before queueing
        except MiniBoxError:
            self._drop_context(req)
            raise
        job_id = secrets.token_hex(6)
        rec = {"id": job_id, "tag": req.tag, "status": "queued", "created": time.time(),
               "file": req.filename, "target": req.target or "", "error": "",
               "daemon": self.instance, "context": str(req.context_dir)}
        self._save(job_id, rec)
        self.redis.zadd(INDEX, {job_id: rec["created"]})
        EventLog(self.redis, job_id).emit("job_queued", id=job_id, tag=req.tag)
        t = threading.Thread(target=self._run, args=(job_id, req, mb), daemon=True,
                             name=f"build-{job_id}")
        t.start()
        return rec

    def _run(self, job_id: str, req: BuildRequest, mb) -> None:
        events = EventLog(self.redis, job_id)
        self._update(job_id, status="running", started=time.time())
        events.emit("job_start", id=job_id, tag=req.tag, blocks=len(mb.blocks))
        try:
            result = Build(self.s, job_id, req, mb).run()
            self._update(job_id, status="done", digest=result["digest"], finished=time.time())
            events.emit("job_done", tag=req.tag, **result)
        except Cancelled as e:
            self._update(job_id, status="cancelled", error=e.message, finished=time.time())
            events.emit("job_cancelled", error=e.to_dict())
        except MiniBoxError as e:
            self._update(job_id, status="failed", error=e.message, finished=time.time())
            events.emit("job_failed", error=e.to_dict())
        except Exception as e:   # a bug: say so plainly, keep the traceback in the log
            log.exception("build %s crashed", job_id)
            err = {"kind": "internal", "message": f"internal error: {e!r}", "hint":
                   "this is a bug in miniboxd; the daemon log has the traceback"}
            self._update(job_id, status="failed", error=err["message"], finished=time.time())
            events.emit("job_failed", error=err)
        finally:
            self._drop_context(req)

    @staticmethod
    def _drop_context(req: BuildRequest) -> None:
        if req.owns_context:
            shutil.rmtree(req.context_dir, ignore_errors=True)

    # --- records ----------------------------------------------------------------
    def _save(self, job_id: str, rec: dict) -> None:
        key = record_key(job_id)
        self.redis.hset(key, mapping={k: str(v) for k, v in rec.items()})
        self.redis.expire(key, RECORD_TTL)

    def _update(self, job_id: str, **fields) -> None:
        self.redis.hset(record_key(job_id), mapping={k: str(v) for k, v in fields.items()})

    def get(self, job_id: str) -> dict:
        raw = self.redis.hgetall(record_key(job_id))
        if not raw:
            raise NotFound(f"no build job '{job_id}'", hint="`minibox builds ls` lists them")
        rec = {k.decode(): v.decode() for k, v in raw.items()}
        for f in ("created", "started", "finished"):
            if rec.get(f):
                rec[f] = float(rec[f])
        return rec

    def list(self, limit: int = 50) -> list[dict]:
        ids = self.redis.zrevrange(INDEX, 0, limit - 1)
        out = []
        for raw in ids:
            try:
                out.append(self.get(raw.decode()))
            except NotFound:
                self.redis.zrem(INDEX, raw)
        return out

    def cancel(self, job_id: str) -> dict:
        rec = self.get(job_id)
        if rec["status"] in FINAL:
            return rec
        self.redis.set(cancel_key(job_id), "cancelled", ex=86400)
        for tid in self.redis.smembers(f"minibox:build:{job_id}:tasks"):
            self.s.celery.control.revoke(tid.decode())
        EventLog(self.redis, job_id).emit("cancel_requested")
        return self.get(job_id)

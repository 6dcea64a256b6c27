"""The farm's build workers by platform: their advertisements in Redis and the route of a build.

Each build worker advertises itself (``wire.WorkerAd``: platform, concurrency, host) under
``wire.keys.worker_key(name)`` with Redis's own expiry, refreshed by a heartbeat
(``workers/heartbeat.py``), and consumes only its platform's queue
(``wire.queues.build_queue``).  The daemon sends every block of a build to the queue of the
build's platform (``--platform``, else the base image's, else its own host's), so a block
never runs on a worker of another platform; when no live worker has that platform the build
fails with that reason instead of waiting on a queue nobody reads.

Liveness is the key's existence, judged by Redis alone: no one compares clocks.
"""

from __future__ import annotations

import time

from minibox.errors import BuildFailed, UserError
from minibox.wire.keys import WORKER_TTL, WORKERS_INDEX, worker_key
from minibox.wire.queues import build_queue
from minibox.wire.workers import WorkerAd

#: how long a build waits for a worker of its platform when no worker at all is alive (the
#: farm is starting: the daemon's own workers are not ready yet), and how long a build with
#: blocks queued tolerates having none of its platform before it fails
GRACE = 2 * WORKER_TTL
#: the route re-reads the advertisements at most this often while a wave runs
RECHECK = 1.0


def advertise(redis, ad: WorkerAd) -> None:
    """One heartbeat: (re)write ``ad`` with a fresh lease, and list its name."""
    pipe = redis.pipeline(transaction=False)
    pipe.set(worker_key(ad.name), ad.encode(), px=int(WORKER_TTL * 1000))
    pipe.sadd(WORKERS_INDEX, ad.name)
    pipe.execute()


def withdraw(redis, name: str) -> None:
    """A worker that stops says so at once (a dead one just expires)."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(worker_key(name))
    pipe.srem(WORKERS_INDEX, name)
    pipe.execute()


def live_workers(redis) -> list[WorkerAd]:
    """Every build worker whose advertisement has not expired, by name."""
    names = sorted(n.decode() if isinstance(n, bytes) else n
                   for n in redis.smembers(WORKERS_INDEX))
    if not names:
        return []
    out, gone = [], []
    for name, raw in zip(names, redis.mget([worker_key(n) for n in names])):
        if raw is None:
            gone.append(name)
            continue
        try:
            out.append(WorkerAd.decode(raw))
        except ValueError:           # a malformed ad (another version): not a live worker
            gone.append(name)
    if gone:
        redis.srem(WORKERS_INDEX, *gone)
    return out


def build_platform(requested: str | None, base_platform: str | None, base_ref: str) -> str:
    """The platform a build's blocks run on: ``--platform``, else the base image's, else
    the daemon's host's.  A base image of another platform than the one asked for is an
    error: its binaries would not run there."""
    from minibox.store.manifests import host_platform, parse_platform

    requested = str(parse_platform(requested)) if requested else None
    if requested and base_platform and not _same(requested, base_platform):
        raise UserError(f"base image '{base_ref}' is {base_platform}, but the build asks for "
                        f"--platform {requested}",
                        hint=f"use a base image for {requested}, or drop --platform")
    return requested or base_platform or str(host_platform())


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def describe(ads: list[WorkerAd]) -> str:
    """``linux/amd64 (2 workers, 8 slots), linux/arm64 (1 worker, 2 slots)``."""
    by: dict[str, list[WorkerAd]] = {}
    for ad in ads:
        by.setdefault(ad.platform, []).append(ad)
    return ", ".join(f"{p} ({len(w)} worker{'s' * (len(w) != 1)}, "
                     f"{sum(a.concurrency for a in w)} slots)" for p, w in sorted(by.items()))


class Route:
    """Where a build's blocks go: its platform's queue, checked against the live workers."""

    def __init__(self, redis, platform: str):
        self.redis, self.platform = redis, platform
        self.queue = build_queue(platform)
        self._checked = 0.0          # when the ads were last read (watch)
        self._seen = float("-inf")   # when a worker of the platform was last seen alive
        self._none_since = 0.0

    def _alive(self) -> tuple[list[WorkerAd], list[WorkerAd]]:
        ads = live_workers(self.redis)
        return [a for a in ads if a.queue == self.queue], ads

    def require(self, should_cancel=lambda: False) -> None:
        """Return when a worker of the platform is alive.  With other platforms' workers
        alive and none of this one, fail now; with no worker alive at all (a farm that is
        starting), wait up to GRACE first."""
        if time.monotonic() - self._seen < RECHECK:     # the wave before just saw one
            return
        deadline = time.monotonic() + GRACE
        while True:
            mine, ads = self._alive()
            if mine:
                self._seen, self._none_since = time.monotonic(), 0.0
                return
            if ads or time.monotonic() > deadline:
                raise self._none(ads)
            should_cancel()
            time.sleep(0.2)

    def watch(self, queued: bool = True) -> None:
        """While blocks wait in the queue: fail once no worker of the platform has been
        alive for GRACE (the last one died or was cut off), rather than wait forever.  A
        block that is running is not this check's business: a lost one is re-sent (the
        scheduler's lock watch), and then waits in the queue again."""
        now = time.monotonic()
        if not queued:
            self._none_since = 0.0
            return
        if now - self._checked < RECHECK:
            return
        self._checked = now
        mine, ads = self._alive()
        if mine:
            self._seen, self._none_since = now, 0.0
            return
        self._none_since = self._none_since or now
        if now - self._none_since > GRACE:
            raise self._none(ads, lost=True)

    def _none(self, ads: list[WorkerAd], lost: bool = False) -> BuildFailed:
        alive = f"alive: {describe(ads)}" if ads else "no build worker is alive at all"
        what = f"has been alive for {GRACE:.0f}s" if lost else "is alive"
        return BuildFailed(
            f"no build worker for platform {self.platform} {what} (queue {self.queue}); "
            f"{alive}",
            hint=f"start one on a {self.platform} machine: minibox-worker build "
                 f"(or --platform {self.platform}); see deploy/FARM.md")

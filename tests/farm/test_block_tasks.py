"""A block's Celery task on the real farm: while it runs, Celery's result backend says
STARTED (the record the block writes in its first round trip to Redis: what the daemon's
lost-worker check reads), and a pool process SIGKILLed mid-block has its block delivered
again (acks_late, reject_on_worker_lost) and built, and the dead process's work dir is
swept by the process the pool forks in its place."""

from __future__ import annotations

import os
import signal
import time

import redis

from minibox.config import Settings
from minibox.wire.keys import block_lock_key, job_tasks_key
from minibox.workers.celery_app import make_celery
from tests.farm.hosts import block_pids, wait_for
from tests.farmkit import write_ctx


def _start(farm, ctx, tag: str) -> str:
    r = farm.cli("build", "-d", "--network", "none", "-t", tag, ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip().split()[-1]


def _ended(farm, job: str) -> dict:
    def end():
        with farm.http(30) as c:
            rec = c.get(f"/builds/{job}").json()
        return rec if rec["status"] in ("done", "failed", "cancelled") else None
    return wait_for(end, f"build {job} to end", timeout=240)


def test_a_pool_process_killed_mid_block_has_its_block_built_again_and_its_dir_swept(farm,
                                                                                    ctx):
    stamp = time.time_ns()
    write_ctx(ctx, {"MiniBox": f"BASE busybox\nBLOCK slow\n"
                               f"    RUN sleep 3 && echo {stamp} > /ok\n"})
    job = _start(farm, ctx, "killed-pool")
    first = wait_for(lambda: block_pids(farm.events(job)).get("slow"), "the block's start")
    r = redis.Redis(unix_socket_path=str(farm.root / "run" / "redis.sock"))
    try:
        [tid] = [t.decode() for t in r.smembers(job_tasks_key(job))]
        key = [e["key"] for e in farm.events(job) if e["type"] == "block_start"][0]
        assert r.exists(block_lock_key(key)), "the running block holds its key's lock"
    finally:
        r.close()
    celery = make_celery(Settings.from_env(farm.env))
    assert celery.AsyncResult(tid).state == "STARTED"
    work = list((farm.root / "tmp").glob(f"block-p{first}-*"))
    assert work, "the running block's work dir"
    os.kill(first, signal.SIGKILL)

    rec = _ended(farm, job)
    assert rec["status"] == "done", rec
    again = block_pids(farm.events(job))["slow"]
    assert again != first
    out = farm.cli("run", "--rm", "--network", "none", "killed-pool", "cat", "/ok")
    assert out.returncode == 0 and out.stdout.strip() == str(stamp), out.stdout + out.stderr
    wait_for(lambda: not any(d.exists() for d in work), "the dead process's dir to be swept",
             timeout=60)


def test_a_running_blocks_output_reaches_the_stream_before_the_block_ends(farm, ctx):
    """A block's events are held back a moment to share a round trip, never until its end:
    the line a long RUN prints first is on the job's stream while the RUN still runs."""
    stamp = time.time_ns()
    write_ctx(ctx, {"MiniBox": f"BASE busybox\nBLOCK long\n"
                               f"    RUN echo first-{stamp} && sleep 8 && echo done > /d\n"})
    job = _start(farm, ctx, "held-events")

    def first_line():
        events = farm.events(job)
        lines = [e for e in events if e["type"] == "log" and e["line"] == f"first-{stamp}"]
        return lines and events
    events = wait_for(first_line, "the first line of output on the stream", timeout=120)
    types = [e["type"] for e in events]
    assert "block_done" not in types and "job_done" not in types, types
    assert types.index("block_start") < types.index("log"), types
    assert _ended(farm, job)["status"] == "done"

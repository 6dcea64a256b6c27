"""The Celery path of a container start, trimmed: no per-task INFO lines in the runtime
worker's log, no GET before a result's SET -- and the results, errors and timeouts still
arrive as before.  All against the farm's real redis,
runtime worker and API."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
import redis
from celery import states

from minibox.config import Settings
from minibox.errors import DaemonUnavailable, MiniBoxError
from minibox.runtime.remote import call
from minibox.workers.celery_app import make_celery
from tests.farmkit import RedisMonitor


def _app(farm):
    return make_celery(Settings.from_env(farm.env))


def _redis(farm) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(farm.sock))


def test_the_worker_logs_no_line_per_task_but_its_ready_line(farm):
    body = {"image": "busybox", "command": ["true"], "network": "none"}
    with farm.http(60) as c:
        r = c.post("/containers", json=body)
        assert r.status_code == 200, r.text
        bad = c.post("/containers", json={"image": "no-such-image-here"})
    assert bad.status_code == 404 and bad.json()["error"]["kind"] == "not_found"
    log = (farm.run_dir / "worker.log").read_text()
    assert "ready" in log
    assert "minibox.runtime.run[" not in log     # neither "received" nor "succeeded in"


def test_errors_and_results_come_back_through_remote_call(farm):
    app = _app(farm)
    with pytest.raises(MiniBoxError) as e:
        call(app, "run", {"image": "no-such-image-here"})
    assert e.value.kind == "not_found"
    assert call(app, "ping") == "pong"


def test_a_worker_that_does_not_answer_in_time_is_daemon_unavailable(farm):
    app = _app(farm)
    worker = farm.procs["worker"].pid
    os.kill(worker, signal.SIGSTOP)
    try:
        t = time.monotonic()
        with pytest.raises(DaemonUnavailable):
            call(app, "ping", timeout=0.5)
        assert time.monotonic() - t < 5
    finally:
        os.kill(worker, signal.SIGCONT)
    assert call(app, "ping") == "pong"


def test_a_task_the_worker_does_not_know_is_daemon_unavailable(farm):
    # the worker stores a NotRegistered failure for it (through the runtime backend)
    with pytest.raises(DaemonUnavailable, match="NotRegistered"):
        call(_app(farm), "no_such_task", timeout=10)


def test_the_runtime_backend_stores_a_result_without_reading_it_first(farm):
    from minibox.workers import result_backend

    app = _app(farm)
    result_backend.use_for(app)
    backend = app.backend
    assert isinstance(backend, result_backend.RuntimeRedisBackend)
    tid = str(uuid.uuid4())
    key = backend.get_key_for_task(tid).decode()
    sub = _redis(farm).pubsub(ignore_subscribe_messages=True)
    sub.subscribe(key)
    mon = RedisMonitor(_redis(farm))
    try:
        backend.store_result(tid, {"ok": {"id": "x"}}, states.SUCCESS)
        mon.wait_for(lambda c: c.startswith("PUBLISH") and key in c)
    finally:
        mon.close()
    ours = [c for c in mon.commands if key in c]
    assert [c.split()[0] for c in ours] == ["SET", "PUBLISH"], ours
    assert "EX 3600" in ours[0]
    published = None
    for _ in range(50):
        published = sub.get_message(timeout=0.1)
        if published:
            break
    sub.close()
    assert published and backend.decode_result(published["data"])["result"] == {"ok": {"id": "x"}}
    # what a waiter reads is what Celery's own backend stores
    got = _app(farm).AsyncResult(tid).get(timeout=5)
    assert got == {"ok": {"id": "x"}}
    meta = _app(farm).backend.get_task_meta(tid)
    assert meta["status"] == states.SUCCESS and meta["task_id"] == tid
    assert _redis(farm).ttl(key) > 3500

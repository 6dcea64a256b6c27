"""An unrecorded start never leaves a running orphan, with either monitor.

The worker sends one byte on the report ("ack") socket once state.json records the start,
then closes it.  If it dies before that (or cannot write the state), the monitor sees EOF
without the byte: it kills the container, removes its cgroup and records exit code 137 with
an error.  A worker that is merely slow never gets its container killed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from minibox.runtime.state import alive, proc_start_time, read_json


def _wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _start_in_dying_worker(rt, run_request: dict | None = None, cid: str = "") -> dict:
    """Start (or run) a container in a forked "worker" that dies (os._exit, the same as a
    SIGKILL for its fds) right before it would record the start.  Returns what it saw."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:   # pragma: no cover - the dying worker
        try:
            os.close(r)

            def die(rec, started, cg, run, spec):
                os.write(w, json.dumps({"id": rec.id, "pid": started.pid,
                                        "pid_start": started.pid_start, "run": run,
                                        "monitor_pid": started.monitor_pid,
                                        "cgroup_dirs": cg.dirs}).encode())
                os._exit(7)
            rt._record_start = die
            if run_request is not None:
                rt.run(run_request)
            else:
                rt.start(cid)
        finally:
            os._exit(3)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 7, data
    return json.loads(data)


def _assert_killed(seen: dict, exit_rec: dict) -> None:
    assert exit_rec["run"] == seen["run"]
    assert exit_rec["exit_code"] == 137
    assert "never recorded" in exit_rec["error"]
    assert not alive(seen["pid"], seen["pid_start"])          # the init is gone
    _wait_for(lambda: proc_start_time(seen["monitor_pid"]) is None, 10, "the monitor's exit")
    assert seen["cgroup_dirs"] and not any(os.path.exists(d) for d in seen["cgroup_dirs"])


def test_worker_death_before_record_kills_the_container(direct_runtime):
    rt = direct_runtime
    cid = rt.create({"image": "busybox", "command": ["sleep", "60"]})
    t0 = time.monotonic()
    seen = _start_in_dying_worker(rt, cid=cid)
    assert seen["id"] == cid and seen["run"] == 1
    exit_json = rt.store.dir(cid) / "exit.json"
    # killed on the worker's death, not at the end of its `sleep 60` (a bound far from
    # both, so a loaded machine does not fail it)
    ex = _wait_for(lambda: read_json(exit_json), 30, "exit.json")
    assert time.monotonic() - t0 < 30
    _assert_killed(seen, ex)
    assert rt.store.load(cid).effective()["status"] == "created"   # never recorded
    # a later start gets a run of its own (not the unrecorded run's exit record) and works
    st = rt.start(cid)
    assert st["status"] == "running" and st["run"] == 2
    time.sleep(0.3)
    assert rt.store.load(cid).effective()["status"] == "running"
    assert rt.kill(cid)
    from minibox.runtime.query import wait_exited
    res = wait_exited(rt.store, [cid], 10)[cid]
    assert res["status"] == "exited" and res["exit_code"] == 137
    assert "error" not in read_json(exit_json)


def test_failed_record_kills_the_container(direct_runtime, monkeypatch):
    """The worker lives but cannot write the state: it closes without the byte, and the
    start fails; nothing keeps running."""
    from minibox.runtime.service import Runtime
    rt = direct_runtime
    cid = rt.create({"image": "busybox", "command": ["sleep", "60"]})
    seen = {}

    def broken(self, rec, started, cg, run, spec):
        seen.update(pid=started.pid, pid_start=started.pid_start, run=run,
                    monitor_pid=started.monitor_pid, cgroup_dirs=cg.dirs)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Runtime, "_record_start", broken)
    with pytest.raises(OSError):
        rt.start(cid)
    ex = _wait_for(lambda: read_json(rt.store.dir(cid) / "exit.json"), 30, "exit.json")
    _assert_killed(seen, ex)


def test_unrecorded_run_rm_removes_everything(direct_runtime):
    rt = direct_runtime
    seen = _start_in_dying_worker(rt, {"image": "busybox", "autoremove": True,
                                       "volumes": ["/scratch"],
                                       "command": ["sh", "-c", "echo x > /scratch/f; sleep 60"]})
    cid = seen["id"]
    tomb = _wait_for(lambda: rt.store.read_tomb(cid), 30, "the tombstone")
    _assert_killed(seen, tomb)
    _wait_for(lambda: not rt.store.dir(cid).exists(), 30, "the container dir's removal")
    assert not [v for v in rt.volumes.list() if v.get("container") == cid]


def test_slow_worker_never_gets_its_container_killed(direct_runtime, monkeypatch):
    from minibox.runtime.service import Runtime
    rt = direct_runtime
    real = Runtime._record_start

    def slow(self, *a, **kw):
        time.sleep(1.5)          # the container exits meanwhile
        return real(self, *a, **kw)
    monkeypatch.setattr(Runtime, "_record_start", slow)
    fast = rt.run({"image": "busybox", "command": ["sh", "-c", "exit 3"]})
    slower = rt.run({"image": "busybox", "command": ["sh", "-c", "sleep 0.5; exit 4"]})
    from minibox.runtime.query import wait_exited
    res = wait_exited(rt.store, [fast["id"], slower["id"]], 10)
    assert res[fast["id"]]["exit_code"] == 3 and res[slower["id"]]["exit_code"] == 4
    for st in (fast, slower):
        assert "error" not in read_json(Path(rt.store.dir(st["id"])) / "exit.json")

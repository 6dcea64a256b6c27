"""Restart policies (--restart), honoured by the runtime worker: back-off between restarts,
a stop by the user wins, and a restart that was due while the worker was down happens when
it comes back."""

from __future__ import annotations

import json
import os
import signal
import time

from minibox.runtime import restart
from tests.runtime.conftest import run_ok


def _state(farm, ref: str) -> dict:
    return json.loads(run_ok(farm, "inspect", "--type", "container", ref))[0]["state"]


def _until(farm, ref: str, cond, timeout: float = 60.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        st = _state(farm, ref)
        if cond(st):
            return st
        assert time.monotonic() < end, f"{ref}: condition not met; last state {st}"
        time.sleep(0.1)


def _record(farm, cid: str, name: str) -> dict:
    """One of the container's record files (state.json, exit.json), {} if not there yet."""
    path = farm.root / "containers" / cid / name
    return json.loads(path.read_text()) if path.exists() else {}


def test_on_failure_restarts_up_to_n_times_with_back_off(farm):
    cid = run_ok(farm, "run", "-d", "--name", "rs-fail", "--restart", "on-failure:3",
                 "busybox", "sh", "-c", "date +%s.%N >> /tmp/starts; exit 3").strip()
    try:
        st = _until(farm, "rs-fail", lambda s: s["restart_count"] == 3 and s["status"] == "exited")
        assert st["run"] == 4 and st["exit_code"] == 3
        time.sleep(restart.delay(4) + 1.0)       # longer than a 5th restart's back-off
        st = _state(farm, "rs-fail")
        assert st["run"] == 4 and st["restart_count"] == 3 and st["status"] == "exited"
    finally:
        run_ok(farm, "rm", "-f", cid)


def test_back_off_doubles_between_restarts(farm):
    """started_at of run N+1 minus finished_at of run N is at least the policy's delay."""
    cid = run_ok(farm, "run", "-d", "--name", "rs-backoff", "--restart", "always",
                 "busybox", "true").strip()
    seen: dict[int, dict] = {}
    try:
        end = time.monotonic() + 60
        while len(seen) < 5 and time.monotonic() < end:
            st, ex = _record(farm, cid, "state.json"), _record(farm, cid, "exit.json")
            seen.setdefault(st["run"], {})["started_at"] = st["started_at"]
            if ex.get("run") in seen:
                seen[ex["run"]]["finished_at"] = ex["finished_at"]
            time.sleep(0.02)
        assert len(seen) >= 5, seen
        for n in range(2, 5):
            if "finished_at" in seen.get(n - 1, {}) and n in seen:
                gap = seen[n]["started_at"] - seen[n - 1]["finished_at"]
                assert gap >= restart.delay(n - 2) * 0.99, (n, gap, seen)
    finally:
        run_ok(farm, "rm", "-f", cid)


def test_no_policy_and_success_do_not_restart(farm):
    a = run_ok(farm, "run", "-d", "busybox", "sh", "-c", "exit 1").strip()
    b = run_ok(farm, "run", "-d", "--restart", "on-failure", "busybox", "true").strip()
    try:
        time.sleep(1.5)
        assert _state(farm, a)["run"] == 1 and _state(farm, a)["exit_code"] == 1
        assert _state(farm, b)["run"] == 1 and _state(farm, b)["exit_code"] == 0
    finally:
        run_ok(farm, "rm", "-f", a, b)


def test_stop_by_the_user_wins_and_start_resumes_the_policy(farm):
    cid = run_ok(farm, "run", "-d", "--name", "rs-stop", "--restart", "always",
                 "busybox", "sleep", "600").strip()
    try:
        run_ok(farm, "stop", "-t", "5", "rs-stop")
        st = _state(farm, "rs-stop")
        assert st["status"] == "exited" and st["stopped_by_user"] is True
        time.sleep(1.5)
        st = _state(farm, "rs-stop")
        assert st["status"] == "exited" and st["run"] == 1
        run_ok(farm, "start", "rs-stop")
        assert _state(farm, "rs-stop")["stopped_by_user"] is False
        # now the workload dies by itself (a signal the test sends its process): restarted
        pid = _state(farm, "rs-stop")["pid"]
        os.kill(pid, signal.SIGKILL)
        st = _until(farm, "rs-stop", lambda s: s["run"] == 3 and s["status"] == "running")
        assert st["restart_count"] == 1
    finally:
        run_ok(farm, "rm", "-f", cid)


def test_restart_due_while_the_worker_is_down_happens_when_it_is_back(farm):
    always = run_ok(farm, "run", "-d", "--name", "rs-always", "--restart", "always",
                    "busybox", "sleep", "600").strip()
    unless = run_ok(farm, "run", "-d", "--name", "rs-unless", "--restart", "unless-stopped",
                    "busybox", "sleep", "600").strip()
    stopped = run_ok(farm, "run", "-d", "--name", "rs-unless-stopped", "--restart",
                     "unless-stopped", "busybox", "sleep", "600").strip()
    stopped_always = run_ok(farm, "run", "-d", "--name", "rs-always-stopped", "--restart",
                            "always", "busybox", "sleep", "600").strip()
    try:
        run_ok(farm, "stop", "-t", "5", stopped, stopped_always)
        farm.kill_worker()
        for ref in (always, unless):
            st = json.loads((farm.root / "containers" / ref / "state.json").read_text())
            os.kill(st["pid"], signal.SIGKILL)         # exits while nobody can restart it
        time.sleep(1.0)
        assert _state(farm, always)["status"] == "exited"
        farm.start_worker()
        for ref in (always, unless, stopped_always):
            st = _until(farm, ref, lambda s: s["status"] == "running" and s["run"] == 2)
            assert st["restart_count"] == 1 or ref == stopped_always
        time.sleep(1.0)
        st = _state(farm, stopped)
        assert st["status"] == "exited" and st["run"] == 1      # unless-stopped: stays
    finally:
        run_ok(farm, "rm", "-f", always, unless, stopped, stopped_always)


def test_bad_restart_policies_are_refused(farm):
    for args, words in (
            (["--restart", "sometimes"], "invalid restart policy 'sometimes'"),
            (["--restart", "always:3"], "takes no retry count"),
            (["--restart", "on-failure:x"], "retry count"),
            (["--rm", "--restart", "always"], "cannot be used together")):
        r = farm.cli("run", "-d", *args, "busybox", "echo", "rs-bad")
        err = r.stderr.decode()
        assert r.returncode != 0 and words in err, (args, r.returncode, err)
        assert "Traceback" not in err
    rows = json.loads(run_ok(farm, "ps", "-a", "--json"))
    assert not [r for r in rows if r["command"] == ["echo", "rs-bad"]]

"""Resource limits and init behaviour: OOM, pids, zombies, signals."""

from __future__ import annotations

import json
import time

from tests.runtime.conftest import run_ok


def test_memory_hog_is_oom_killed(farm):
    r = farm.cli("run", "--name", "hog", "-m", "32", "--shm-size", "256m", "busybox",
                 "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=128")
    assert r.returncode == 137, r
    info = json.loads(farm.cli("inspect", "hog").stdout)[0]
    assert info["state"]["oom_killed"] is True and info["state"]["exit_code"] == 137
    run_ok(farm, "rm", "hog")


def test_fork_bomb_is_capped(farm):
    """Bounded "fork bomb": 30 sleeps of 3 s; the pids limit of 12 stops it early."""
    r = farm.cli("run", "--rm", "--pids-limit", "12", "busybox", "sh", "-c",
                 "i=0; for n in $(seq 30); do sleep 3 & i=$((i+1)); echo $i; done; wait")
    assert r.returncode != 0 and b"can't fork" in r.stderr
    started = [int(x) for x in r.stdout.split()]
    assert 0 < max(started) <= 10          # tini + sh + at most 10 sleeps = 12


def test_zombies_are_reaped(farm):
    out = run_ok(farm, "run", "--rm", "busybox", "sh", "-c",
                 "(sleep 0.1 &); (sleep 0.1 &); sleep 0.6; cat /proc/[0-9]*/stat | cut -d' ' -f3")
    assert "Z" not in out.split()


def test_signals_are_forwarded(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sh", "-c",
                 'trap "echo got HUP" HUP; trap "echo got TERM; exit 3" TERM; '
                 'echo ready; while true; do sleep 0.05; done').strip()
    _wait_log(farm, cid, "ready")
    run_ok(farm, "kill", "-s", "HUP", cid)
    _wait_log(farm, cid, "got HUP")
    run_ok(farm, "stop", cid)
    assert "got TERM" in farm.cli("logs", cid).stdout.decode()
    info = json.loads(farm.cli("inspect", cid).stdout)[0]
    assert info["state"]["exit_code"] == 3
    run_ok(farm, "rm", cid)


def test_cpu_and_cpuset_limits_written(farm):
    cid = run_ok(farm, "run", "-d", "--cpus", "0.5", "-c", "512", "--cpuset-cpus", "0",
                 "busybox", "sleep", "30").strip()
    info = json.loads(farm.cli("inspect", cid).stdout)[0]
    dirs = info["cgroup"]["dirs"]
    cpu = next(d for d in dirs if "/cpu/" in d)
    assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "50000"
    assert open(f"{cpu}/cpu.shares").read().strip() == "512"
    cpuset = next(d for d in dirs if "/cpuset/" in d)
    assert open(f"{cpuset}/cpuset.cpus").read().strip() == "0"
    run_ok(farm, "rm", "-f", cid)
    assert not any(__import__("os").path.exists(d) for d in dirs)


def _wait_log(farm, cid, text, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in farm.cli("logs", cid).stdout.decode():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the logs of {cid}")

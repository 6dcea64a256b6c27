"""miniboxd killed with SIGKILL and started again: it adopts the Redis and workers the dead
daemon left (never a second Redis, never orphans), resumes the build that was running, and
a stop afterwards leaves no process of the farm behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.farmkit import Farm, daemon_procs, write_ctx
from tests.runtime.images import import_busybox


def _procs(root) -> tuple[list[int], list[int]]:
    """PIDs of the farm's redis-server and of its worker processes."""
    return daemon_procs(root)


def _ppid(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return 0


def _tops(pids: list[int]) -> list[int]:
    """The worker processes whose parent is not one of them (the pool masters); a process
    gone since it was listed (no parent to read) is not one."""
    parents = {p: _ppid(p) for p in pids}
    return sorted(p for p, pp in parents.items() if pp and pp not in pids)


@pytest.fixture
def farm():
    f = Farm(concurrency=2)
    try:
        import_busybox(f.root, "busybox")
        yield f.start()
    finally:
        f.destroy()


def _wait_status(farm, job: str, want, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    rec = {}
    while time.monotonic() < deadline:
        with farm.http() as c:
            rec = c.get(f"/builds/{job}").json()
        if rec.get("status") in want:
            return rec
        time.sleep(0.1)
    raise AssertionError(f"build {job} never reached {want}: {rec}")


def test_sigkilled_daemon_is_adopted_and_its_build_resumed(farm, tmp_path):
    ctx = write_ctx(tmp_path / "ctx", {"MiniBox": (
        "BASE busybox\n"
        f"BLOCK slow\n    RUN sleep 3 && echo {time.time()} > /slow\n"
        "BLOCK after\n    NEED slow\n    RUN cat /slow > /after\n")})
    r = farm.cli("build", "-d", "-t", "resumed", str(ctx))
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split()[-1]
    _wait_status(farm, job, ("running",))
    time.sleep(1.0)                              # the slow block is on a worker now

    redis_before, workers_before = _procs(farm.root)
    assert len(redis_before) == 1 and workers_before
    # the pool masters, taken now: a block's short-lived child listed here may be gone by
    # the end, and a gone process has no parent to read
    tops = _tops(workers_before)
    first = farm.proc
    first.send_signal(signal.SIGKILL)
    first.wait()

    farm.start()
    rec = _wait_status(farm, job, ("done", "failed", "cancelled"))
    assert rec["status"] == "done", rec
    types = [e["type"] for e in farm.events(job)]
    assert "job_resumed" in types
    redis_after, workers_after = _procs(farm.root)
    assert redis_after == redis_before                                # adopted, not doubled
    assert len(tops) == 2 and set(tops) <= set(workers_after)          # adopted: still there
    # and none started beside them: the new daemon is the parent of no worker
    assert [p for p in workers_after if _ppid(p) == farm.proc.pid] == []
    r = farm.cli("run", "--rm", "--network", "none", "resumed", "cat", "/after")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr

    # a second daemon on the same data root is refused, and says which one runs
    other = subprocess.run([sys.executable, "-m", "minibox.daemon.main"], env=farm.env,
                           capture_output=True, text=True, timeout=60)
    assert other.returncode != 0
    assert f"another miniboxd (pid {farm.proc.pid})" in other.stderr

    farm.stop()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_procs(farm.root)):
        time.sleep(0.1)
    assert _procs(farm.root) == ([], [])

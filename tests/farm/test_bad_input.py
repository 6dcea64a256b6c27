"""Bad input gets a clear error, a non-zero exit, and leaves nothing half-done."""

from __future__ import annotations

import os
import signal
import time


from tests.farmkit import write_ctx


def no_leftovers(farm) -> None:
    mounts = [l.split()[4] for l in open("/proc/self/mountinfo")
              if str(farm.root) in l.split()[4]]
    assert mounts == [], f"mounts left behind: {mounts}"
    tmp = farm.root / "tmp"
    leftover = [p.name for p in tmp.iterdir()] if tmp.exists() else []
    assert [p for p in leftover if p.startswith("block-")] == []


def test_malformed_minibox_file_names_file_and_line(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    RUNN echo hi\n"})
    r = farm.build(ctx, "bad", check=False)
    assert r.returncode == 2
    assert "MiniBox:3" in r.stderr and "RUNN" in r.stderr
    assert "did you mean" in r.stderr.lower()
    assert "Traceback" not in r.stderr + r.stdout


def test_missing_context_is_a_usage_error(farm, tmp_path):
    r = farm.build(tmp_path / "nope", "bad", check=False)
    assert r.returncode == 2
    assert "nope" in r.stderr and "Traceback" not in r.stderr


def test_missing_minibox_file(farm, ctx):
    r = farm.build(ctx, "bad", check=False)
    assert r.returncode == 2 and "no MiniBox file" in r.stderr


def test_copy_outside_the_context_is_refused(farm, ctx, tmp_path):
    (tmp_path / "secret").write_text("s")
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    COPY ../secret /x\n"})
    r = farm.build(ctx, "escape", check=False)
    assert r.returncode != 0
    assert "MiniBox:3" in r.stderr and "Traceback" not in r.stderr
    os.symlink("/etc", ctx / "etc-link")
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    COPY etc-link/passwd /x\n"})
    r = farm.build(ctx, "escape", check=False)
    assert r.returncode != 0 and "MiniBox:3" in r.stderr


def test_failing_run_reports_block_line_exit_code_and_output(farm, ctx):
    mb = ("BASE busybox\nBLOCK ok\n    RUN true\nBLOCK broken\n    NEED ok\n"
          "    RUN echo first-line; echo the-last-words; exit 3\n")
    write_ctx(ctx, {"MiniBox": mb})
    r = farm.build(ctx, "failing", check=False)
    assert r.returncode == 1
    assert "block 'broken'" in r.stderr
    assert "line 6" in r.stderr and "code 3" in r.stderr
    assert "the-last-words" in r.stderr
    no_leftovers(farm)


def test_unknown_base_image(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE no-such-image\nBLOCK a\n    RUN true\n"})
    r = farm.build(ctx, "nobase", check=False)
    assert r.returncode == 1 and "no-such-image" in r.stderr


SLEEP = str(3000 + os.getpid() % 997)     # a duration no other test on the host uses


def test_cancel_mid_wave_stops_running_blocks(farm, ctx):
    mb = "BASE busybox\n" + "".join(f"BLOCK s{i}\n    RUN sleep {SLEEP} # {time.time()}\n"
                                    for i in range(2))
    write_ctx(ctx, {"MiniBox": mb})
    r = farm.cli("build", "-d", "-t", "cancelme", ctx)
    job = r.stdout.strip()
    wait_for_event(farm, job, "block_start")
    t0 = time.monotonic()
    assert farm.cli("builds", "cancel", job).returncode == 0
    wait_for_status(farm, job, "cancelled", 15)
    assert time.monotonic() - t0 < 10
    time.sleep(0.5)
    no_leftovers(farm)
    assert not sandbox_processes(farm)


def sandbox_processes(farm) -> list[int]:
    """Processes whose command line still runs the test's own `sleep`."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if open(f"/proc/{d}/cmdline", "rb").read() == f"sleep\0{SLEEP}\0".encode():
                    out.append(int(d))
            except OSError:
                pass
    return out


def wait_for_event(farm, job: str, kind: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in farm.events(job):
            if e["type"] == kind:
                return e
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event in {timeout}s")


def wait_for_status(farm, job: str, status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with farm.http() as c:
            rec = c.get(f"/builds/{job}").json()
        if rec["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job} is {rec['status']}, not {status}")


def test_worker_killed_mid_block_redoes_the_block(farm, ctx):
    mb = f"BASE busybox\nBLOCK slow\n    RUN sleep 3; echo done-{time.time()} > /marker\n"
    write_ctx(ctx, {"MiniBox": mb})
    r = farm.cli("build", "-d", "-t", "killed", ctx)
    job = r.stdout.strip()
    start = wait_for_event(farm, job, "block_start")
    pid = int(start["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    wait_for_status(farm, job, "done", 60)
    events = farm.events(job)
    assert len([e for e in events if e["type"] == "block_start"]) >= 2
    no_leftovers(farm)


def processes_with_env(assignment: str) -> list[int]:
    """PIDs of the processes whose environment holds ``assignment`` (NAME=VALUE)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if assignment.encode() in env:
                out.append(int(d))
    return out


def wait_until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_a_second_build_of_a_running_block_waits_on_its_lock_and_shares_it(farm, ctx,
                                                                          tmp_path):
    """Two builds overlap on one cache key, for sure: the first's block is held (its RUN
    waits on a `sleep` the test ends) until the second's task is running and waiting on
    the block's lock.  The block executes once; the second build takes its layer."""
    from celery.result import AsyncResult

    from minibox.config import Settings
    from minibox.redisconn import connect
    from minibox.wire import BUILD_QUEUE, block_lock_key, job_tasks_key
    from minibox.workers.celery_app import make_celery

    gate = f"MINIBOX_TEST_GATE={os.getpid()}-{time.time_ns()}"
    mb = (f"BASE busybox\nBLOCK once\n    ENV {gate}\n"
          "    RUN sleep 600 || true; echo shared > /m\n")
    write_ctx(ctx, {"MiniBox": mb})
    other = write_ctx(tmp_path / "ctx2", {"MiniBox": mb})
    settings = Settings.from_env(farm.env)
    redis, celery = connect(settings), make_celery(settings)
    first = farm.cli("build", "-d", "-t", "dedupe-a", ctx).stdout.strip()
    key = wait_for_event(farm, first, "block_start", 60)["key"]
    sleeps = wait_until(lambda: [p for p in processes_with_env(gate)
                                 if open(f"/proc/{p}/comm").read().strip() == "sleep"],
                        60, "the first build's RUN")
    try:
        second = farm.cli("build", "-d", "-t", "dedupe-b", other).stdout.strip()
        queued = wait_for_event(farm, second, "block_queued", 60)
        assert queued["key"] == key
        [task] = wait_until(lambda: redis.smembers(job_tasks_key(second)), 30,
                            "the second build's task")
        # the second block's task is running on a build worker while the first still
        # holds the key's lock: it can only be waiting on that lock
        wait_until(lambda: AsyncResult(task.decode(), app=celery).state == "STARTED", 60,
                   f"the second block on the {BUILD_QUEUE} queue")
        assert redis.exists(block_lock_key(key))
        assert [e for e in farm.events(first) if e["type"] == "block_done"] == []
    finally:
        for pid in sleeps:
            os.kill(pid, signal.SIGTERM)        # the first block's RUN goes on and ends
    wait_for_status(farm, first, "done", 120)
    wait_for_status(farm, second, "done", 120)
    starts = [e for j in (first, second) for e in farm.events(j) if e["type"] == "block_start"]
    assert [e["block"] for e in starts] == ["once"], "the block executed more than once"
    # the worker that waited found the entry the first wrote (block_cached, shared), and
    # the daemon counted the block as cached
    events = farm.events(second)
    assert [e["block"] for e in events if e["type"] == "block_cached" and e.get("shared")] \
        == ["once"]
    [result] = [e["result"] for e in events if e["type"] == "block_result"]
    assert result["ok"] and result["cached"]
    assert [e for e in events if e["type"] == "job_done"][0]["cached"] == 1
    layers = [farm.image(t)["manifest"]["layers"][-1]["digest"] for t in ("dedupe-a",
                                                                         "dedupe-b")]
    assert layers[0] == layers[1]

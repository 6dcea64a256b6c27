"""Bad input gets a clear error, a non-zero exit, and leaves nothing half-done."""

from __future__ import annotations

import os
import signal
import threading
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


def test_cancel_mid_wave_stops_running_blocks(farm, ctx):
    mb = "BASE busybox\n" + "".join(f"BLOCK s{i}\n    RUN sleep 30 # {time.time()}\n"
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
    """Processes whose command line still runs the test's `sleep 30`."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if open(f"/proc/{d}/cmdline", "rb").read().startswith(b"sleep\x0030"):
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


def test_two_builds_of_the_same_block_execute_it_once(farm, ctx, tmp_path):
    marker = time.time()
    mb = f"BASE busybox\nBLOCK once\n    RUN sleep 1; echo {marker} > /m\n"
    write_ctx(ctx, {"MiniBox": mb})
    other = write_ctx(tmp_path / "ctx2", {"MiniBox": mb})
    results = {}

    def go(name, c):
        results[name] = farm.build(c, name, check=False)

    ts = [threading.Thread(target=go, args=(n, c)) for n, c in
          (("dedupe-a", ctx), ("dedupe-b", other))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(r.returncode == 0 for r in results.values()), results
    with farm.http() as c:
        jobs = c.get("/builds").json()[:2]
    starts = sum(1 for j in jobs for e in farm.events(j["id"]) if e["type"] == "block_start")
    assert starts == 1

"""Names, ps, logs, exec, start/restart, rm, stats, health."""

from __future__ import annotations

import json
import time

from tests.runtime.conftest import run_ok


def test_names_ps_and_filters(farm):
    cid = run_ok(farm, "run", "-d", "--name", "named1", "busybox", "sleep", "30").strip()
    r = farm.cli("run", "-d", "--name", "named1", "busybox", "true")
    assert r.returncode != 0 and b"already in use" in r.stderr
    rows = json.loads(run_ok(farm, "ps", "--json"))
    assert any(x["id"] == cid and x["name"] == "named1" for x in rows)
    assert run_ok(farm, "ps", "-q", "--filter", "name=named1").strip() == cid[:12]
    assert "named1" in run_ok(farm, "ps")
    r = farm.cli("rm", "named1")
    assert r.returncode != 0 and b"running" in r.stderr
    run_ok(farm, "rm", "-f", "named1")
    assert cid[:12] not in run_ok(farm, "ps", "-a")


def test_logs_tail_timestamps_follow(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sh", "-c",
                 "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done").strip()
    r = farm.cli("logs", "-f", cid)                     # follows until the container exits
    assert r.stdout.decode().split() == [f"line{i}" for i in range(1, 6)]
    assert run_ok(farm, "logs", "--tail", "2", cid).split() == ["line4", "line5"]
    first = run_ok(farm, "logs", "-t", cid).splitlines()[0]
    assert first.endswith(" line1") and first[:4].isdigit() and "T" in first[:20]
    assert run_ok(farm, "logs", "--since", str(time.time() + 60), cid) == ""
    run_ok(farm, "rm", cid)


def test_exec_runs_in_the_container(farm):
    cid = run_ok(farm, "run", "-d", "-e", "INSIDE=yes", "bb-app", "sleep", "30").strip()
    farm.env["MINIBOX_LEAK_CHECK"] = "daemon-secret"
    try:
        out = run_ok(farm, "exec", "-e", "X=1", "-w", "/tmp", cid, "sh", "-c",
                     "echo $INSIDE $X; pwd; id -u; env | grep -c MINIBOX; ls /; "
                     "cat /proc/1/cmdline | tr '\\0' ' '")
    finally:
        farm.env.pop("MINIBOX_LEAK_CHECK")
    lines = out.splitlines()
    assert lines[:4] == ["yes 1", "/tmp", "1000", "0"]
    assert "linuxrc" in lines                          # the busybox root, not the host's
    assert lines[-1].startswith("/dev/init -- sleep")
    assert run_ok(farm, "exec", "-u", "0", cid, "id", "-u").strip() == "0"
    r = farm.cli("exec", cid, "sh", "-c", "exit 5")
    assert r.returncode == 5
    r = farm.cli("exec", cid, "nope")
    assert r.returncode == 127
    run_ok(farm, "rm", "-f", cid)


def test_start_and_restart_keep_the_filesystem(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sh", "-c",
                 "echo run >> /counter; cat /counter | wc -l; sleep 30").strip()
    run_ok(farm, "restart", "-t", "1", cid)
    time.sleep(0.3)
    run_ok(farm, "stop", "-t", "1", cid)
    run_ok(farm, "start", cid)
    time.sleep(0.3)
    assert run_ok(farm, "logs", cid).split() == ["1", "2", "3"]
    run_ok(farm, "rm", "-f", cid)


def test_stats_no_stream_is_fast(farm):
    cid = run_ok(farm, "run", "-d", "-m", "64", "busybox", "sleep", "30").strip()
    t = time.monotonic()
    row = json.loads(run_ok(farm, "stats", "--no-stream", "--json", cid))
    assert time.monotonic() - t < 2.0        # the CLI's own start-up dominates
    assert row["memory_limit"] == 64 << 20 and row["pids"] == 2
    assert row["memory_usage"] > 0 and "cpu_percent" in row
    run_ok(farm, "rm", "-f", cid)


def test_healthcheck_from_run_options_and_image(farm):
    cid = run_ok(farm, "run", "-d", "--health-cmd", "test -e /tmp/ok",
                 "--health-interval", "0.2s", "--health-retries", "2", "busybox",
                 "sleep", "30").strip()
    assert _health(farm, cid, "unhealthy")
    log = json.loads(run_ok(farm, "inspect", cid))[0]["state"]["health"]["log"]
    assert log and log[-1]["exit_code"] == 1
    run_ok(farm, "exec", cid, "touch", "/tmp/ok")
    assert _health(farm, cid, "healthy")
    run_ok(farm, "rm", "-f", cid)
    cid = run_ok(farm, "run", "-d", "bb-health", "sh", "-c", "touch /tmp/ok; sleep 30").strip()
    assert _health(farm, cid, "healthy")
    assert "healthy" in run_ok(farm, "ps")
    run_ok(farm, "rm", "-f", cid)


def _health(farm, cid, want, timeout=15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = json.loads(run_ok(farm, "inspect", cid))[0]["state"]
        if (st.get("health") or {}).get("status") == want:
            return True
        time.sleep(0.2)
    return False


def test_concurrent_runs_same_name_one_wins(farm):
    """The runtime worker starts containers in several threads: of four concurrent runs
    with one --name exactly one starts, the others get the name Conflict."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _i: farm.cli("run", "-d", "--name", "samename",
                                                    "busybox", "sleep", "30"), range(4)))
    try:
        ok = [r for r in results if r.returncode == 0]
        assert len(ok) == 1, [r.stderr for r in results]
        assert all(b"already in use" in r.stderr for r in results if r.returncode != 0)
        rows = json.loads(run_ok(farm, "ps", "--json"))
        assert [x["name"] for x in rows].count("samename") == 1
    finally:
        farm.cli("rm", "-f", "samename")

"""The farm across a real network boundary: build workers on simulated hosts (network
namespaces of the test's own, on a bridge of its own, each with its own data root) reach
Redis and miniboxd only over that bridge, with the farm's token (tests/farm/netfarm.py).

Cases: blocks spread over both hosts, and a fresh host rebuilds nothing cached; one block
needed by two builds runs once and is a cache hit on the other host; a host cut off
mid-block has its block re-sent to another within a bounded time; a block lost three times
fails the build with that reason; cancel reaches a block running on another host; Redis
restarted mid-build ends the build (never a hang)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.farm.hosts import block_pids, wait_for
from tests.farm.netfarm import NetFarm
from tests.farmkit import busybox_tarball, write_ctx

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture
def netfarm():
    nf = NetFarm(hosts=2).start()
    try:
        yield nf
    finally:
        nf.close()


def _ctx(tmp_path, name: str, text: str):
    ctx = write_ctx(tmp_path / name, {"MiniBox": "BASE busybox.tar.gz\n" + text})
    shutil.copy(busybox_tarball(), ctx / "busybox.tar.gz")
    return ctx


def _start(nf: NetFarm, ctx, tag: str) -> str:
    r = nf.farm.cli("build", "-d", "--network", "none", "-t", tag, ctx)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip().split()[-1]


def _job(nf: NetFarm, job: str) -> dict:
    with nf.farm.http(30) as c:
        r = c.get(f"/builds/{job}")
    return r.json() if r.status_code == 200 else {"status": f"HTTP {r.status_code}"}


def _ended(nf: NetFarm, job: str, timeout: float = 240) -> dict:
    return wait_for(lambda: (r := _job(nf, job))["status"] in ("done", "failed", "cancelled")
                    and r, f"build {job} to end", timeout)


def _starts(nf: NetFarm, job: str) -> list[dict]:
    return [e for e in nf.farm.events(job) if e["type"] == "block_start"]


def _gate() -> str:
    return f"MINIBOX_TEST_GATE={os.getpid()}-{time.time_ns()}"


def test_blocks_spread_over_both_hosts_and_a_fresh_host_rebuilds_nothing(netfarm, tmp_path):
    nf = netfarm
    nf.start_workers(concurrency=2)
    six = "".join(f"BLOCK b{i}\n    RUN sleep 1 && echo {i} > /b{i}\n" for i in range(6))
    ctx = _ctx(tmp_path, "six", six)
    nf.farm.build(ctx, "six", "--network", "none")
    job = nf.farm.last_job()
    ran = {nf.host_of(pid).index for pid in block_pids(nf.farm.events(job["id"])).values()}
    assert ran == {0, 1}, "both hosts must have run blocks"
    # each host fetched the base from the daemon over the bridge, into its own data root
    assert all(any((h.root / "layers").iterdir()) for h in nf.hosts)
    # a third host, fresh data root; the first two leave the farm
    for h in nf.hosts:
        h.worker.end()
    third = nf.add_host()
    nf.start_workers(concurrency=2)
    nf.farm.build(ctx, "six-again", "--network", "none")
    again = nf.farm.last_job()
    assert again["status"] == "done" and _starts(nf, again["id"]) == []
    assert not (third.root / "layers").exists() or not any((third.root / "layers").iterdir())
    # and what is new runs there, on top of the cached blocks' layers it fetches
    more = _ctx(tmp_path, "more", six + "BLOCK top\n    NEED b0 b5\n    RUN cat /b0 /b5 > /t\n")
    nf.farm.build(more, "more", "--network", "none")
    [start] = _starts(nf, nf.farm.last_job()["id"])
    assert nf.host_of(int(start["worker"].rsplit(":", 1)[1])) is third


def test_a_block_two_builds_need_runs_once_and_is_a_hit_on_the_other_host(netfarm, tmp_path):
    nf = netfarm
    nf.start_workers(concurrency=1)
    ctx = _ctx(tmp_path, "once", "BLOCK once\n    RUN sleep 3 && "
                                 "cat /proc/sys/kernel/random/uuid > /u\n")
    jobs = [_start(nf, ctx, tag) for tag in ("one", "two")]
    assert [_ended(nf, j)["status"] for j in jobs] == ["done", "done"]
    events = [e for j in jobs for e in nf.farm.events(j)]
    assert len([e for e in events if e["type"] == "block_start"]) == 1
    assert len([e for e in events if e["type"] == "block_cached" and e.get("shared")]) == 1
    layers = {nf.farm.image(t)["manifest"]["layers"][-1]["digest"] for t in ("one", "two")}
    assert len(layers) == 1


@pytest.mark.parametrize("how", ["cut", "sigkill"])
def test_a_host_lost_mid_block_has_its_block_sent_to_another(netfarm, tmp_path, how):
    """Its link goes down (the machine is cut off), or its worker's whole process group is
    SIGKILLed (the machine died): the block is re-sent to the other host and built."""
    nf = netfarm
    nf.start_workers(concurrency=1)
    ctx = _ctx(tmp_path, how, "BLOCK slow\n    RUN sleep 6 && echo ok > /ok\n")
    job = _start(nf, ctx, how)
    [first] = wait_for(lambda: _starts(nf, job), "the block's start")
    victim = nf.host_of(int(first["worker"].rsplit(":", 1)[1]))
    victim.cut() if how == "cut" else victim.worker.kill()
    t0 = time.monotonic()
    rec = _ended(nf, job, timeout=180)
    took = time.monotonic() - t0
    assert rec["status"] == "done", rec
    events = nf.farm.events(job)
    assert [e["reason"] for e in events if e["type"] == "block_retry"] == ["build worker lost"]
    [_, again] = _starts(nf, job)
    assert nf.host_of(int(again["worker"].rsplit(":", 1)[1])) not in (victim, None)
    assert took < 120, f"the block took {took:.0f}s to be re-sent and built"


def test_a_block_lost_three_times_fails_the_build_with_that_reason(netfarm, tmp_path):
    nf = netfarm
    nf.add_host()
    nf.start_workers(concurrency=1)
    ctx = _ctx(tmp_path, "lost", "BLOCK doomed\n    RUN sleep 120\n")
    job = _start(nf, ctx, "lost")
    cut = []
    deadline = time.monotonic() + 300
    while len(cut) < 3 and time.monotonic() < deadline:
        for e in _starts(nf, job)[len(cut):]:
            host = nf.host_of(int(e["worker"].rsplit(":", 1)[1]))
            host.cut()
            cut.append(host)
        if _job(nf, job)["status"] != "running":
            break
        time.sleep(0.3)
    assert len({h.index for h in cut}) == 3, [h.index for h in cut]
    rec = _ended(nf, job)
    assert rec["status"] == "failed"
    assert "block 'doomed'" in rec["error"] and "was lost 3 times" in rec["error"], rec


def test_cancel_reaches_a_block_running_on_another_host(netfarm, tmp_path):
    from tests.farm.test_bad_input import processes_with_env

    nf = netfarm
    nf.start_workers(concurrency=1)
    gate = _gate()
    ctx = _ctx(tmp_path, "cancel", f"BLOCK long\n    ENV {gate}\n    RUN sleep 600\n")
    job = _start(nf, ctx, "cancel")
    wait_for(lambda: _starts(nf, job), "the block's start")
    wait_for(lambda: processes_with_env(gate), "the block's RUN")
    r = nf.farm.cli("builds", "cancel", job)
    assert r.returncode == 0, r.stderr
    rec = _ended(nf, job, timeout=120)
    assert rec["status"] == "cancelled"
    wait_for(lambda: not processes_with_env(gate), "the RUN on the other host to end", 60)


def test_redis_restarted_mid_build_ends_the_build(netfarm, tmp_path):
    nf = netfarm
    nf.start_workers(concurrency=1)
    ctx = _ctx(tmp_path, "blip", "BLOCK a\n    RUN sleep 5 && echo a > /a\n"
                                 "BLOCK b\n    NEED a\n    RUN echo b > /b\n")
    job = _start(nf, ctx, "blip")
    wait_for(lambda: _starts(nf, job), "the block's start")
    nf.restart_redis()
    rec = _ended(nf, job, timeout=240)
    assert rec["status"] in ("done", "failed"), rec
    if rec["status"] == "failed":
        assert "Redis" in rec["error"], rec
    print("after a Redis restart the build ended", rec["status"], rec.get("error"))
    # the farm works again: the workers reconnect and a new build is done
    nf.farm.build(_ctx(tmp_path, "after", "BLOCK c\n    RUN echo c > /c\n"), "after",
                  "--network", "none")

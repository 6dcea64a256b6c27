"""The REST API, token auth, daemon-side path builds, Flower, and an external broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.farmkit import Farm, free_port, write_ctx


def test_openapi_lists_the_build_routes(farm):
    spec = httpx.get(f"{farm.api}/openapi.json").json()
    paths = spec["paths"]
    for p in ("/builds", "/builds/{job_id}", "/builds/{job_id}/events",
              "/builds/{job_id}/cancel", "/builds/path", "/images", "/ping"):
        assert p in paths, p


def test_build_from_a_daemon_side_path_and_follow_events(farm, tmp_path):
    ctx = write_ctx(tmp_path / "srv", {"MiniBox": "BASE busybox\nBLOCK a\n    RUN echo hi\n"})
    r = httpx.post(f"{farm.api}/builds/path", json={"tag": "from-path", "context": str(ctx)})
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    with httpx.stream("GET", f"{farm.api}/builds/{job}/events", timeout=60) as resp:
        types = [json.loads(line)["type"] for line in resp.iter_lines() if line.strip()]
    assert types[0] == "job_queued" and types[-1] == "job_done"
    assert "wave_start" in types and "log" in types


def test_path_build_outside_the_prefixes_is_refused(farm):
    r = httpx.post(f"{farm.api}/builds/path", json={"tag": "x", "context": "/etc"})
    assert r.status_code == 400
    assert "not under an allowed prefix" in r.json()["error"]["message"]


def test_unknown_job_is_404(farm):
    r = httpx.get(f"{farm.api}/builds/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
    assert farm.cli("builds", "cancel", "nope").returncode == 1


def test_bad_tag_is_refused_with_a_hint(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\n"})
    r = farm.build(ctx, "Bad:Tag!", check=False)
    assert r.returncode == 2 and "invalid image name" in r.stderr


def test_detach_prints_the_job_id_and_builds_ls_shows_it(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    RUN true\n"})
    r = farm.cli("build", "-d", "-t", "detached", ctx)
    job = r.stdout.strip()
    assert r.returncode == 0 and len(job) == 12
    r = farm.cli("builds", "logs", "-f", job)
    assert r.returncode == 0 and "Successfully built detached:latest" in r.stderr
    assert job in farm.cli("builds", "ls").stdout


def test_json_progress_is_one_event_per_line(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    RUN echo out-line\n"})
    r = farm.cli("build", "--progress", "json", "--no-cache", "-t", "jsonprog", ctx)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["type"] == "job_done"
    assert {"type": "log", "block": "a", "line": "out-line"}.items() <= \
        next(e for e in events if e["type"] == "log").items()


def test_tty_progress_renders_under_a_terminal(farm, ctx):
    import pty
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK tty\n    RUN echo on-a-tty\n"})
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(farm.env)
        os.execv(sys.executable, [sys.executable, "-m", "minibox.cli.main", "build",
                                  "--no-cache", "-t", "ttyprog", str(ctx)])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"Successfully built ttyprog:latest" in out and b"tty" in out


def test_token_is_required_on_every_route_when_set(tmp_path):
    from fastapi.testclient import TestClient

    from minibox.api.app import create_app
    from minibox.config import Settings

    app = create_app(Settings(data_root=tmp_path, api_token="s3cret"))
    c = TestClient(app)
    assert c.get("/ping").status_code == 401
    assert c.get("/ping", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = c.get("/ping", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.text == "Daemon is running"
    assert c.get("/ping", headers={"X-API-Token": "s3cret"}).status_code == 200
    body = c.get("/images").json()
    assert body["error"]["kind"] == "unauthorized"


def _flower(farm, *args, env=None):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "minibox.workers.main", "flower",
                             "--port", str(port), *args], env=dict(farm.env, **(env or {})),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(15)


def test_flower_needs_credentials_and_shows_builds_and_blocks(farm, ctx):
    proc, base = _flower(farm, env={"MINIBOX_FLOWER_BASIC_AUTH": "ops:s3cret-pass"})
    try:
        auth = ("ops", "s3cret-pass")
        workers = _wait_json(f"{base}/api/workers?refresh=1",
                             lambda w: any(k.startswith("build@") for k in w), auth=auth)
        assert any(k.startswith("build@") for k in workers)
        for bad in (None, ("ops", "wrong")):
            assert httpx.get(f"{base}/api/workers", auth=bad, timeout=5).status_code == 401
        assert b"s3cret-pass" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        write_ctx(ctx, {"MiniBox": f"BASE busybox\nBLOCK flower\n    RUN echo {time.time()}\n"})
        farm.build(ctx, "flowered")
        job = farm.last_job()["id"]
        tasks = _wait_json(f"{base}/api/tasks",
                           lambda t: any(v.get("name") == "minibox.builder.block"
                                         and v.get("state") == "SUCCESS"
                                         for v in t.values()), auth=auth)
        blocks = [v for v in tasks.values() if v.get("name") == "minibox.builder.block"]
        assert any(f"build={job}" in v["args"] and "block=flower" in v["args"] for v in blocks)
    finally:
        _stop(proc)


def test_flower_makes_its_own_credentials_and_refuses_open_on_other_addresses(farm):
    proc, base = _flower(farm)
    try:
        creds = (farm.root / "run" / "flower-credentials")
        deadline = time.monotonic() + 30
        while not creds.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        _wait_json(f"{base}/api/workers", lambda w: True,
                   auth=tuple(creds.read_text().strip().split(":", 1)))
        assert creds.stat().st_mode & 0o077 == 0
        assert httpx.get(f"{base}/api/workers", timeout=5).status_code == 401
    finally:
        _stop(proc)
    proc, _ = _flower(farm, "--unauthenticated", "--address", "0.0.0.0")
    try:
        assert proc.wait(30) != 0
        assert b"only allowed on a loopback address" in proc.stderr.read()
    finally:
        _stop(proc)


def _wait_json(url: str, ok, timeout: float = 30.0, auth=None):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=5, auth=auth)
            if r.status_code == 200:
                last = r.json()
                if ok(last):
                    return last
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never satisfied the check; last answer: {last}")


@pytest.fixture
def external_redis(tmp_path):
    """A redis-server of the test's own, on a unix socket (an "external" broker)."""
    sock = tmp_path / "ext-redis.sock"
    redis = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock),
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        yield sock
    finally:
        redis.terminate()
        redis.wait(10)


@pytest.fixture
def external_farm(external_redis):
    farm = Farm({"MINIBOX_BROKER_URL": f"redis+socket://{external_redis}"})
    try:
        yield farm.start()
    finally:
        farm.destroy()


SCRATCH_APP = {"MiniBox": "BASE scratch\nBLOCK a\n    COPY f /f\n", "f": "x"}


def test_daemon_uses_an_external_broker(external_farm, external_redis, tmp_path):
    """With MINIBOX_BROKER_URL the daemon starts no redis of its own."""
    farm = external_farm
    assert not (farm.root / "run" / "redis.sock").exists()
    farm.build(write_ctx(tmp_path / "c", SCRATCH_APP), "ext")
    out = subprocess.run(["redis-cli", "-s", str(external_redis), "--scan", "--pattern",
                          "minibox:build:*"], capture_output=True, text=True).stdout
    assert "minibox:build:" in out


def test_jobs_of_a_dead_daemon_are_failed_at_restart(external_farm, external_redis,
                                                     tmp_path):
    """With an external broker a restarted daemon fails what its predecessor left running,
    instead of showing it as running forever."""
    farm = external_farm
    farm.build(write_ctx(tmp_path / "c", SCRATCH_APP), "first")
    job = farm.last_job()["id"]
    subprocess.run(["redis-cli", "-s", str(external_redis), "hset", f"minibox:build:{job}",
                    "status", "running", "daemon", "gone"], check=True, capture_output=True)
    farm.stop()
    farm.start()
    rec = httpx.get(f"{farm.api}/builds/{job}").json()
    assert rec["status"] == "failed" and "restarted" in rec["error"]


def test_daemon_on_a_unix_socket(tmp_path):
    sock = tmp_path / "miniboxd.sock"
    farm = Farm({"MINIBOX_HTTP_ADDR": f"unix://{sock}", "MINIBOX_API": f"unix://{sock}"})
    try:
        farm.proc = subprocess.Popen([sys.executable, "-m", "minibox.daemon.main"],
                                     env=farm.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(300):
            if farm.cli("ping").returncode == 0:
                break
            time.sleep(0.1)
        assert farm.cli("ping").stdout.strip() == "Daemon is running"
        ctx = write_ctx(tmp_path / "c", {"MiniBox": "BASE scratch\nBLOCK a\n    COPY f /f\n",
                                         "f": "x"})
        assert farm.build(ctx, "over-uds").returncode == 0
        assert "over-uds:latest" in farm.cli("images", "-q").stdout.split()
    finally:
        farm.destroy()

"""A build worker on another data root calls the daemon's blob and context endpoints with the
daemon's token; at its start it checks that it can (tests/farm/test_scaleout.py builds
through one that can)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.farmkit import Farm, free_port


@pytest.fixture(scope="module")
def daemon():
    farm = Farm().start(args=("--no-workers",))
    try:
        yield farm
    finally:
        farm.destroy()


def _worker(farm: Farm, **env) -> subprocess.CompletedProcess:
    """``minibox-worker build`` as on another machine: its own data root, the farm's broker.
    A worker that passes its check would run until stopped: the timeout is then a failure."""
    other = Path(tempfile.mkdtemp(prefix="minibox-test-worker-", dir="/var/tmp"))
    e = dict(farm.env, MINIBOX_DATA_ROOT=str(other),
             MINIBOX_BROKER_URL=f"redis+socket://{farm.root}/run/redis.sock")
    e.update(env)
    try:
        return subprocess.run([sys.executable, "-m", "minibox.workers.main", "build", "-c", "1"],
                              env=e, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_a_worker_with_a_wrong_token_fails_at_start(daemon):
    wrong = "wrong-" + "7" * 20
    r = _worker(daemon, MINIBOX_API_TOKEN=wrong)
    assert r.returncode == 1
    assert f"miniboxd at {daemon.api} refused this worker's API token" in r.stderr
    assert "MINIBOX_API_TOKEN" in r.stderr and "Traceback" not in r.stderr
    assert wrong not in r.stderr
    log = daemon.log.read_text()
    assert "refused GET /version from 127.0.0.1" in log and wrong not in log


def test_a_worker_without_a_token_fails_at_start(daemon):
    r = _worker(daemon)
    assert r.returncode == 1
    assert "needs an API token, and this worker has none" in r.stderr


def test_a_worker_with_an_unreachable_broker_fails_at_start(daemon, tmp_path):
    r = _worker(daemon, MINIBOX_API_TOKEN=daemon.token(),
                MINIBOX_BROKER_URL=f"redis+socket://{tmp_path}/no-redis.sock")
    assert r.returncode == 1
    assert "cannot reach the broker at redis+socket://" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_worker_that_cannot_reach_the_daemon_fails_at_start():
    """The daemon announces MINIBOX_PUBLIC_URL to the farm; nothing listens there."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    farm = Farm({"MINIBOX_PUBLIC_URL": nowhere}).start(args=("--no-workers",))
    try:
        r = _worker(farm, MINIBOX_API_TOKEN=farm.token())
        assert r.returncode == 1
        assert f"cannot reach the API from miniboxd at {nowhere}" in r.stderr
        assert "MINIBOX_PUBLIC_URL" in r.stderr and "Traceback" not in r.stderr
    finally:
        farm.destroy()

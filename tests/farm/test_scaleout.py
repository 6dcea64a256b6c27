"""More build workers join through the same Redis: a worker with its own data root (as on
another machine) fetches the context and layers from the daemon and sends its layers back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.farm.test_build import unpack_file
from tests.farmkit import Farm, busybox_tarball, write_ctx


@pytest.fixture
def split_farm(tmp_path):
    """A daemon with no local workers, and one build worker on a separate data root."""
    farm = Farm().start(args=("--no-workers",))
    other = Path(tempfile.mkdtemp(prefix="minibox-test-remote-", dir="/var/tmp"))
    env = dict(farm.env, MINIBOX_DATA_ROOT=str(other), MINIBOX_API_TOKEN=farm.token(),
               MINIBOX_BROKER_URL=f"redis+socket://{farm.root}/run/redis.sock")
    worker = subprocess.Popen([sys.executable, "-m", "minibox.workers.main", "build",
                               "-c", "2", "-n", "remote@test"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        yield farm, other, worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        farm.destroy()
        shutil.rmtree(other, ignore_errors=True)


def test_a_worker_on_another_data_root_builds_the_blocks(split_farm, tmp_path):
    farm, other, worker = split_farm
    base = write_ctx(tmp_path / "base", {"MiniBox": "BASE busybox.tar.gz\n"})
    shutil.copy(busybox_tarball(), base / "busybox.tar.gz")
    farm.build(base, "busybox")
    ctx = write_ctx(tmp_path / "app", {
        "MiniBox": "BASE busybox\nBLOCK a\n    COPY msg /msg\n    RUN cat /msg > /a\n"
                   "BLOCK b\n    NEED a\n    RUN cat /a /etc/hostname > /b\n",
        "msg": "from the context\n"})
    r = farm.build(ctx, "remote-built")
    assert r.returncode == 0
    events = farm.events(farm.last_job()["id"])
    workers = {e["worker"] for e in events if e["type"] == "block_start"}
    assert workers and all(w.split(":")[1] != str(farm.proc.pid) for w in workers)
    # the image on the daemon holds the layers the remote worker made
    assert unpack_file(farm, "remote-built", "a") == "from the context\n"
    assert unpack_file(farm, "remote-built", "b").startswith("from the context\n")
    # the worker's own root fetched the base layer and the context
    assert any((other / "layers").iterdir())
    assert any((other / "contexts").glob("remote-*"))
    # a rebuild is all cache hits on the daemon
    farm.build(ctx, "remote-built")
    events = farm.events(farm.last_job()["id"])
    assert [e for e in events if e["type"] == "block_start"] == []

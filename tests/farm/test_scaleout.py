"""More build workers join through the same Redis: a worker with its own data root (as on
another machine) fetches the context and layers from the daemon and sends its layers back."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.farm.hosts import start_worker
from tests.farm.test_build import unpack_file
from tests.farmkit import Farm, busybox_tarball, write_ctx


@pytest.fixture
def split_farm(request):
    """A daemon with no local workers, and build workers each on a separate data root:
    one with two processes, or (parametrized with 2) two with one process each."""
    farm = Farm().start(args=("--no-workers",))
    hosts = getattr(request, "param", 1)
    roots = [Path(tempfile.mkdtemp(prefix="minibox-test-remote-", dir="/var/tmp"))
             for _ in range(hosts)]
    workers = []
    try:
        for n, root in enumerate(roots):
            workers.append(start_worker(farm, f"remote{n}@test", root=root,
                                        concurrency=2 if hosts == 1 else 1))
        yield farm, roots[0], workers[0]
    finally:
        for w in workers:
            w.end()
        farm.destroy()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


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
    job = farm.last_job()
    assert job["blocks"] == "2" and job["hosts"] == [socket.gethostname()]
    assert socket.gethostname() in farm.cli("builds", "ls").stdout
    events = farm.events(job["id"])
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


@pytest.mark.parametrize("split_farm", [2], indirect=True)
def test_the_cache_index_is_shared_by_every_host(split_farm, tmp_path):
    """Two builds need the same block at once; each goes to a worker on its own data root
    (two hosts, one process each).  The block runs once: the other worker waits on the key's
    lock and then finds the first host's entry in the farm-wide index, though it has not the
    layer itself."""
    farm, _, _ = split_farm
    base = write_ctx(tmp_path / "base", {"MiniBox": "BASE busybox.tar.gz\n"})
    shutil.copy(busybox_tarball(), base / "busybox.tar.gz")
    farm.build(base, "busybox")
    ctx = write_ctx(tmp_path / "app", {"MiniBox": (
        "BASE busybox\nBLOCK once\n    RUN sleep 2 && cat /proc/sys/kernel/random/uuid > /t\n")})
    jobs = []
    for tag in ("one", "two"):
        r = farm.cli("build", "-d", "-t", tag, ctx)
        assert r.returncode == 0, r.stderr
        jobs.append(r.stdout.strip().split()[-1])
    for job in jobs:
        farm.cli("builds", "logs", "-f", job, timeout=120)
    with farm.http() as c:
        assert [c.get(f"/builds/{j}").json()["status"] for j in jobs] == ["done", "done"]
    events = [e for j in jobs for e in farm.events(j)]
    assert len([e for e in events if e["type"] == "block_start"]) == 1
    shared = [e for e in events if e["type"] == "block_cached" and e.get("shared")]
    assert len(shared) == 1, events
    assert unpack_file(farm, "one", "t") == unpack_file(farm, "two", "t")

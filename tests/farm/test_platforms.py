"""Workers advertise platform and capacity; a block never runs on a worker of another platform.

Two real build workers on one daemon's Redis: one of this machine's platform, one that says
it is linux/arm64 (``--platform``, the override a test may use; a real farm runs it on an
arm64 machine).  Each build's blocks go to the queue of its platform only, and a platform no
live worker serves is a clear error, not a hang."""

from __future__ import annotations

import shutil
import socket

import pytest

from minibox.store.manifests import host_platform
from tests.farm.hosts import block_pids, start_worker, wait_advertised, wait_for
from tests.farmkit import Farm, busybox_tarball, write_ctx

HOST = str(host_platform())
OTHER = "linux/arm64" if HOST != "linux/arm64" else "linux/amd64"


@pytest.fixture(scope="module")
def two_platforms():
    farm = Farm().start(args=("--no-workers",))
    workers = []
    try:
        workers.append(start_worker(farm, "native@test", concurrency=2))
        workers.append(start_worker(farm, "other@test", concurrency=1, platform=OTHER))
        wait_advertised(farm, *workers)
        yield farm, workers[0], workers[1]
    finally:
        for w in workers:
            w.end()
        farm.destroy()


def _ctx(tmp_path, name: str, text: str):
    ctx = write_ctx(tmp_path / name, {"MiniBox": text})
    shutil.copy(busybox_tarball(), ctx / "busybox.tar.gz")
    return ctx


APP = ("BASE busybox.tar.gz\nBLOCK a\n    RUN echo a > /a\nBLOCK b\n    RUN echo b > /b\n"
       "BLOCK c\n    NEED a b\n    RUN cat /a /b > /c\n")


def test_the_workers_advertise_platform_capacity_and_host(two_platforms):
    farm, native, other = two_platforms
    ads = wait_advertised(farm, native, other)
    assert (ads["native@test"].platform, ads["native@test"].concurrency) == (HOST, 2)
    assert (ads["other@test"].platform, ads["other@test"].concurrency) == (OTHER, 1)
    assert ads["other@test"].queue == "build." + OTHER.replace("/", "-")
    assert {ad.host for ad in ads.values()} == {socket.gethostname()}
    assert ads["native@test"].pid == native.pid
    # the daemon lists them (GET /workers, `minibox builds workers`)
    with farm.http() as c:
        listed = {a["name"]: a for a in c.get("/workers").json()}
    assert listed["other@test"]["platform"] == OTHER and listed["native@test"]["concurrency"] == 2
    table = farm.cli("builds", "workers", check=True).stdout
    assert "PLATFORM" in table and OTHER in table and "build." + HOST.replace("/", "-") in table


def test_each_build_runs_only_on_workers_of_its_platform(two_platforms, tmp_path):
    farm, native, other = two_platforms
    ctx = _ctx(tmp_path, "app", APP)
    farm.build(ctx, "on-other", "--platform", OTHER, "--network", "none")
    pids = block_pids(farm.events(farm.last_job()["id"]))
    assert sorted(pids) == ["a", "b", "c"]
    assert all(other.runs(p) for p in pids.values()), (pids, other.pid)
    # the same blocks for this machine's platform (the base is a rootfs: the daemon's own
    # platform by default) are other blocks, and run on the native worker only
    farm.build(ctx, "on-native", "--network", "none")
    pids = block_pids(farm.events(farm.last_job()["id"]))
    assert sorted(pids) == ["a", "b", "c"]
    assert all(native.runs(p) for p in pids.values()), (pids, native.pid)


def test_a_platform_no_worker_serves_fails_at_once_with_the_reason(two_platforms, tmp_path):
    farm, _, _ = two_platforms
    ctx = _ctx(tmp_path, "riscv", APP)
    r = farm.build(ctx, "riscv", "--platform", "linux/riscv64", check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "no build worker for platform linux/riscv64 is alive" in out, out
    assert f"{HOST} (1 worker, 2 slots)" in out and f"{OTHER} (1 worker, 1 slot" in out, out
    assert "Traceback" not in out
    job = farm.last_job()
    assert job["status"] == "failed" and "linux/riscv64" in job["error"]


def test_a_base_image_of_another_platform_is_refused(two_platforms, tmp_path):
    farm, _, _ = two_platforms
    farm.build(_ctx(tmp_path, "base", "BASE busybox.tar.gz\n"), "bb")    # this platform's
    ctx = write_ctx(tmp_path / "app", {"MiniBox": "BASE bb\nBLOCK a\n    RUN true > /a\n"})
    r = farm.build(ctx, "bb-other", "--platform", OTHER, check=False)
    assert r.returncode != 0
    assert f"base image 'bb' is {HOST}, but the build asks for --platform {OTHER}" in \
        r.stdout + r.stderr
    bad = farm.build(ctx, "bb-bad", "--platform", "amd64", check=False)
    assert bad.returncode != 0 and "platform" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


def test_a_build_whose_last_worker_dies_fails_with_the_reason(tmp_path):
    """The only worker of the platform is killed mid-block: its advertisement expires, the
    block is lost, and the build fails saying no worker of the platform is alive any more
    (it never waits for ever on a queue nobody reads)."""
    farm = Farm().start(args=("--no-workers",))
    native = start_worker(farm, "native@test")
    lonely = start_worker(farm, "lonely@test", platform=OTHER)
    try:
        wait_advertised(farm, native, lonely)
        ctx = _ctx(tmp_path, "slow", "BASE busybox.tar.gz\nBLOCK a\n    RUN sleep 600\n")
        job = farm.cli("build", "-d", "--network", "none", "--platform", OTHER, "-t", "slow",
                       ctx).stdout.strip()
        wait_for(lambda: [e for e in farm.events(job) if e["type"] == "block_start"],
                 "the block's start")
        lonely.kill()
        rec = wait_for(lambda: (r := farm.last_job())["status"] in ("failed", "done") and r,
                       "the build's end", timeout=180)
        assert rec["status"] == "failed"
        assert f"no build worker for platform {OTHER} has been alive" in rec["error"], rec
    finally:
        lonely.end()
        native.end()
        farm.destroy()


def _arch(plat: str) -> str:
    return plat.split("/")[1]


def test_a_build_for_a_platform_is_labelled_with_it(two_platforms, tmp_path):
    farm, _, _ = two_platforms
    ctx = _ctx(tmp_path, "label", "BASE busybox.tar.gz\nBLOCK a\n    RUN echo a > /a\n")
    farm.build(ctx, "label-other", "--platform", OTHER, "--network", "none")
    farm.build(ctx, "label-native", "--network", "none")
    for tag, plat in (("label-other", OTHER), ("label-native", HOST)):
        img = farm.image(tag)
        assert (img["os"], img["architecture"]) == ("linux", _arch(plat)), (tag, img)
        assert img["config"].get("variant") is None
    # no block at all (the rootfs only): the same layers and config as this machine's
    # image, but not that image: one of its own, labelled with the platform asked for
    meta = _ctx(tmp_path, "meta", "BASE busybox.tar.gz\n")
    farm.build(meta, "meta-native")
    farm.build(meta, "meta-other", "--platform", OTHER)
    native, other = farm.image("meta-native"), farm.image("meta-other")
    assert native["architecture"] == _arch(HOST) and other["architecture"] == _arch(OTHER)
    assert native["digest"] != other["digest"]
    assert native["config"]["rootfs"] == other["config"]["rootfs"]


@pytest.fixture(scope="module")
def registry():
    from tests.registry.registrykit import Registry

    reg = Registry().start()
    try:
        yield reg
    finally:
        reg.stop()


def test_the_base_is_pulled_for_the_platform_asked_for(two_platforms, registry, tmp_path):
    """A base in a registry as an index of two platforms (the other platform's image holds
    this machine's busybox, labelled for the other: its worker runs on this machine): each
    build takes the base of its own platform, also when the store holds the other one."""
    import hashlib
    import json

    farm, native, other = two_platforms
    repo = f"{registry.host}/multi/base"
    meta = _ctx(tmp_path, "meta", "BASE busybox.tar.gz\nBLOCK m\n    RUN echo $0 > /m\n")
    entries = []
    for plat, tag in ((HOST, "native"), (OTHER, "other")):
        extra = ("--platform", OTHER) if plat == OTHER else ()
        farm.build(meta, f"{repo}:{tag}", "--network", "none", *extra)
        farm.cli("push", f"{repo}:{tag}", check=True)
        with registry.client() as c:
            r = c.get(f"/v2/multi/base/manifests/{tag}",
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert r.status_code == 200, r.text
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + hashlib.sha256(r.content).hexdigest(),
                        "size": len(r.content),
                        "platform": {"os": "linux", "architecture": _arch(plat)}})
    index_type = "application/vnd.oci.image.index.v1+json"
    with registry.client() as c:
        r = c.put("/v2/multi/base/manifests/all", headers={"Content-Type": index_type},
                  content=json.dumps({"schemaVersion": 2, "mediaType": index_type,
                                      "manifests": entries}).encode())
        assert r.status_code == 201, r.text
    app = write_ctx(tmp_path / "app", {"MiniBox": f"BASE {repo}:all\n"
                                                  "BLOCK a\n    RUN cat /m > /a\n"})
    by_platform = {HOST: (entries[0]["digest"], native), OTHER: (entries[1]["digest"], other)}
    for plat in (OTHER, HOST):          # the second finds the first's base in the store
        farm.build(app, f"app-{_arch(plat)}", "--platform", plat, "--network", "none")
        events = farm.events(farm.last_job()["id"])
        [base] = [e for e in events if e["type"] == "base"]
        digest, worker = by_platform[plat]
        assert base["digest"] == digest, (plat, base)
        assert all(worker.runs(pid) for pid in block_pids(events).values())
        assert farm.image(f"app-{_arch(plat)}")["architecture"] == _arch(plat)
    # --pull never takes the store's copy (the last pulled: this machine's) and refuses it
    r = farm.build(app, "app-never", "--platform", OTHER, "--pull", "never", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    assert f"is {HOST}, but the build asks for --platform {OTHER}" in r.stdout + r.stderr

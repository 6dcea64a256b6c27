"""Bind mounts (rw and ro), named volumes, db run, anonymous volumes (-v /path, VOLUME)."""

from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest

from tests.runtime.conftest import run_ok
from tests.runtime.volume_image import import_volume_image


def test_bind_mounts(farm, tmp_path):
    (tmp_path / "in.txt").write_text("from host\n")
    out = run_ok(farm, "run", "--rm", "-v", f"{tmp_path}:/data", "busybox", "sh", "-c",
                 "cat /data/in.txt; echo back > /data/out.txt")
    assert out == "from host\n" and (tmp_path / "out.txt").read_text() == "back\n"
    r = farm.cli("run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox", "touch", "/data/x")
    assert r.returncode == 1 and b"Read-only" in r.stderr


def test_named_volume_persists(farm):
    run_ok(farm, "volume", "create", "vol1")
    run_ok(farm, "run", "--rm", "-v", "vol1:/v", "busybox", "sh", "-c", "echo kept > /v/f")
    assert run_ok(farm, "run", "--rm", "-v", "vol1:/v", "busybox", "cat", "/v/f") == "kept\n"
    assert "vol1" in run_ok(farm, "volume", "ls")
    info = json.loads(run_ok(farm, "volume", "inspect", "vol1"))[0]
    assert info["mountpoint"].endswith("/volumes/vol1/_data")
    cid = run_ok(farm, "run", "-d", "-v", "vol1:/v", "busybox", "true").strip()
    r = farm.cli("volume", "rm", "vol1")
    assert r.returncode != 0 and b"in use" in r.stderr
    run_ok(farm, "rm", "-f", cid)
    run_ok(farm, "volume", "rm", "vol1")
    assert "vol1" not in run_ok(farm, "volume", "ls")


def test_db_run(farm):
    out = run_ok(farm, "db", "run", "--name", "db1", "--shm-size", "128", "busybox", "sh", "-c",
                 "df -k /dev/shm | tail -1; grep CapEff /proc/self/status; sleep 30")
    cid = out.strip().splitlines()[-1]
    import time
    time.sleep(0.5)
    logs = run_ok(farm, "logs", cid)
    assert " 131072 " in logs                      # 128 MB of /dev/shm
    caps = int(logs.split("CapEff:")[1].split()[0], 16)
    assert caps & (1 << 14) and caps & (1 << 23)   # IPC_LOCK, SYS_NICE
    assert not caps & (1 << 21)                    # never SYS_ADMIN
    info = json.loads(run_ok(farm, "inspect", "db1"))[0]
    assert any(m.get("Name") == "db1-data" and m["Type"] == "volume" for m in info["Mounts"])
    run_ok(farm, "rm", "-f", "db1")
    run_ok(farm, "volume", "rm", "db1-data")


# --- anonymous volumes --------------------------------------------------------------------
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def vol_image(farm) -> str:
    return import_volume_image(farm.root)


def _volumes(farm) -> set[str]:
    return set(run_ok(farm, "volume", "ls", "-q").split())


def _mounts(farm, ref) -> dict:
    return {m["Destination"]: m for m in json.loads(run_ok(farm, "inspect", ref))[0]["Mounts"]}


def test_image_volumes_are_copied_up_and_shown(farm, vol_image):
    cid = run_ok(farm, "run", "-d", vol_image, "sh", "-c",
                 "echo written > /data/mine; sleep 30").strip()
    mounts = _mounts(farm, cid)
    assert set(mounts) == {"/data", "/cache"}
    data = mounts["/data"]
    assert data["Type"] == "volume" and data["RW"] and data["Anonymous"]
    assert HEX64.match(data["Name"]) and data["Source"].endswith(f"/volumes/{data['Name']}/_data")
    assert {data["Name"], mounts["/cache"]["Name"]} <= _volumes(farm)
    src = data["Source"]
    st = os.lstat(src)                             # the directory's own owner and mode
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o750)
    st = os.lstat(f"{src}/hello.txt")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1001, 0o640)
    assert os.readlink(f"{src}/link") == "hello.txt"
    assert oct(os.lstat(f"{src}/sub").st_mode & 0o7777) == oct(0o700)
    assert sorted(os.listdir(src)) == ["hello.txt", "link", "mine", "new.txt", "sub"]
    out = run_ok(farm, "exec", cid, "sh", "-c", "cat /data/link /data/sub/deep.txt; "
                 "ls /cache | wc -l; cat /data/mine")
    assert out == "hello from the image\ndeep\n0\nwritten\n"
    r = farm.cli("volume", "rm", data["Name"])     # in use: refused, naming the container
    name = json.loads(run_ok(farm, "inspect", cid))[0]["name"]
    assert r.returncode == 1 and f"in use by container {name} ({cid[:12]})".encode() in r.stderr
    r = farm.cli("volume", "rm", "-f", data["Name"])
    assert r.returncode == 1 and b"in use" in r.stderr
    run_ok(farm, "rm", "-f", cid)                   # without -v: they stay, dangling
    assert {data["Name"], mounts["/cache"]["Name"]} <= _volumes(farm)
    info = json.loads(run_ok(farm, "volume", "inspect", data["Name"]))[0]
    assert info["anonymous"] and info["container"] is None
    assert open(f"{src}/mine").read() == "written\n"
    run_ok(farm, "volume", "rm", data["Name"], mounts["/cache"]["Name"])
    assert not os.path.exists(src)


def test_rm_v_removes_anonymous_but_never_named(farm, vol_image):
    cid = run_ok(farm, "run", "-d", "-v", "keepme:/named", "-v", "/anon", vol_image,
                 "true").strip()
    mounts = _mounts(farm, cid)
    assert mounts["/named"]["Name"] == "keepme" and not mounts["/named"]["Anonymous"]
    anon = {mounts[t]["Name"] for t in ("/anon", "/data", "/cache")}
    assert all(HEX64.match(n) for n in anon) and anon <= _volumes(farm)
    run_ok(farm, "rm", "-v", cid)
    left = _volumes(farm)
    assert "keepme" in left and not anon & left
    run_ok(farm, "volume", "rm", "keepme")


def test_run_rm_removes_anonymous_volumes(farm, vol_image):
    before = _volumes(farm)
    out = run_ok(farm, "run", "--rm", "-v", "/scratch", vol_image, "sh", "-c",
                 "echo x > /scratch/f; cat /scratch/f; ls /data")
    assert out == "x\nhello.txt\nlink\nnew.txt\nsub\n"
    assert _volumes(farm) == before


def test_named_volume_or_bind_overrides_image_volume(farm, vol_image, tmp_path):
    (tmp_path / "host.txt").write_text("host\n")
    before = _volumes(farm)
    out = run_ok(farm, "run", "--rm", "-v", f"{tmp_path}:/data", vol_image, "ls", "/data")
    assert out == "host.txt\n"
    out = run_ok(farm, "run", "--rm", "-v", "ovr:/data/", vol_image, "ls", "/data")
    assert out == "hello.txt\nlink\nnew.txt\nsub\n"      # a new, empty named volume: copied up
    run_ok(farm, "run", "--rm", "-v", "ovr:/data", vol_image, "rm", "/data/new.txt")
    out = run_ok(farm, "run", "--rm", "-v", "ovr:/data", vol_image, "ls", "/data")
    assert out == "hello.txt\nlink\nsub\n"               # not empty: never copied again
    assert _volumes(farm) == before | {"ovr"}
    run_ok(farm, "volume", "rm", "ovr")


def test_bad_volume_input_leaves_nothing(farm, vol_image):
    before_vols, before_ctrs = _volumes(farm), set(farm.container_ids())
    for args, msg in ((["-v", ""], b"invalid volume"), (["-v", ":/x"], b"invalid volume"),
                      (["-v", "/x", "-v", "/x/"], b"duplicate mount point /x"),
                      (["-v", "/nonexistent-src:/y"], b"does not exist")):
        r = farm.cli("run", "--rm", *args, vol_image, "true")
        assert r.returncode != 0 and msg in r.stderr and b"Traceback" not in r.stderr, r.stderr
    cid = run_ok(farm, "run", "-d", "--name", "volname1", "busybox", "sleep", "30").strip()
    r = farm.cli("run", "-d", "--name", "volname1", "-v", "/z", vol_image, "true")
    assert r.returncode != 0 and b"already in use" in r.stderr
    run_ok(farm, "rm", "-f", cid)
    r = farm.cli("volume", "rm", "no-such-volume")
    assert r.returncode == 1 and b"no such volume" in r.stderr
    assert _volumes(farm) == before_vols and set(farm.container_ids()) == before_ctrs


# --- run --rm: the monitor deletes the anonymous volumes at the exit ---------------------
@pytest.fixture(params=["minimon", "python-monitor"])
def farm_monitor(farm, request):
    """The farm with its usual (compiled) monitor, or with the runtime worker restarted to
    use the Python one."""
    if request.param == "minimon":
        yield farm
        return
    farm.kill_worker()
    farm.env["MINIBOX_PYTHON_MONITOR"] = "1"
    farm.start_worker()
    try:
        yield farm
    finally:
        farm.kill_worker()
        farm.env.pop("MINIBOX_PYTHON_MONITOR", None)
        farm.start_worker()


def test_run_rm_deletes_anonymous_volumes_before_returning(farm_monitor):
    farm = farm_monitor
    vdir = farm.root / "volumes"
    vdir.mkdir(exist_ok=True)
    before = set(os.listdir(vdir))
    run_ok(farm, "run", "--rm", "-v", "/scratch", "-v", "rmkeep:/keep", "busybox", "sh", "-c",
           "echo x > /scratch/f; echo y > /keep/f")
    assert set(os.listdir(vdir)) == before | {"rmkeep"}       # at once: no reaper involved
    listed = _volumes(farm)
    assert "rmkeep" in listed and listed <= before | {"rmkeep"}
    assert (vdir / "rmkeep" / "_data" / "f").read_text() == "y\n"   # named: never deleted
    run_ok(farm, "volume", "rm", "rmkeep")


def test_runtime_run_rm_deletes_anonymous_volumes(direct_runtime):
    from minibox.runtime.query import wait_exited
    rt = direct_runtime
    st = rt.run({"image": "busybox", "autoremove": True, "volumes": ["/scratch", "nv:/named"],
                 "command": ["sh", "-c", "echo x > /scratch/f; echo y > /named/f"]})
    res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
    assert res["exit_code"] == 0
    assert os.listdir(rt.volumes.root) == ["nv"]
    assert (rt.volumes.path("nv") / "f").read_text() == "y\n"


def test_run_rm_volume_deletion_is_checked(direct_runtime, monkeypatch, tmp_path):
    """Whatever the plan says, the monitor deletes only DataRoot/volumes/<64 hex> dirs that
    are anonymous volumes made for this container and not mounted by another one."""
    from minibox.runtime.query import wait_exited
    from minibox.runtime.service import Runtime
    from minibox.atomic import write_json
    rt = direct_runtime
    vroot = rt.volumes.root
    cid = rt.create({"image": "busybox", "autoremove": True, "volumes": ["/a", "/b"],
                     "command": ["true"]})
    mounts = {m["target"]: m["source"] for m in rt.store.load(cid, True).config["mounts"]}
    mine_a, mine_b = mounts["/a"], mounts["/b"]
    user = rt.create({"image": "busybox", "volumes": [f"{mine_b}:/x"], "command": ["true"]})

    def fake_volume(d: Path, **meta) -> Path:
        (d / "_data").mkdir(parents=True)
        (d / "_data" / "keep").write_text("keep\n")
        write_json(d / "volume.json", {"name": d.name, **meta})
        return d
    hexes = [c * 64 for c in "0123456789"]
    outside = tmp_path / "outside"
    targets = [
        fake_volume(vroot / hexes[0]),                                   # named (hex name)
        fake_volume(vroot / hexes[1], anonymous=True, container="f" * 64),  # another's
        fake_volume(outside / hexes[2], anonymous=True, container=cid),  # outside the store
        fake_volume(rt.data_root / "victim" / hexes[3], anonymous=True, container=cid),
        fake_volume(vroot / "named-vol", anonymous=True, container=cid),  # not a hex name
        vroot / mine_b,                                                  # used by `user`
    ]
    fake_volume(outside / hexes[4], anonymous=True, container=cid)
    os.symlink(outside / hexes[4], vroot / hexes[4])                     # a symlink
    bogus = [str(p) for p in targets] + [
        f"{vroot}/../victim/{hexes[3]}", str(vroot / hexes[4]), f"{vroot}/{hexes[4]}/_data",
        hexes[1], "/", str(vroot), str(vroot / ".."), ""]
    real_plan = Runtime._plan

    def plan(self, *a, **kw):
        p = real_plan(self, *a, **kw)
        assert sorted(os.path.basename(v) for v in p.anonymous_volumes) == sorted(
            [mine_a, mine_b])
        return dataclasses.replace(p, anonymous_volumes=bogus + p.anonymous_volumes)
    monkeypatch.setattr(Runtime, "_plan", plan)
    rt.start(cid)
    assert wait_exited(rt.store, [cid], 10)[cid]["exit_code"] == 0
    assert not (vroot / mine_a).exists()                       # its own: deleted
    for p in targets[:5] + [outside / hexes[4]]:
        assert (p / "_data" / "keep").read_text() == "keep\n", p
    assert (vroot / mine_b / "_data").is_dir() and os.path.islink(vroot / hexes[4])
    rt.remove(user)

"""Bind mounts (rw and ro), named volumes, db run, anonymous volumes (-v /path, VOLUME)."""

from __future__ import annotations

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

"""Bind mounts (rw and ro), named volumes, db run."""

from __future__ import annotations

import json

from tests.runtime.conftest import run_ok


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
    assert any(m["source"] == "db1-data" for m in info["mounts"])
    run_ok(farm, "rm", "-f", "db1")
    run_ok(farm, "volume", "rm", "db1-data")

"""Terminals through the API (container -t and exec -t), and the Python monitor fallback."""

from __future__ import annotations

import json
import os
import struct
import time

import httpx
import pytest

from tests.runtime.images import import_busybox


def frames(data: bytes):
    while len(data) >= 8:
        stream, size = struct.unpack(">BxxxI", data[:8])
        yield stream, data[8:8 + size]
        data = data[8 + size:]


def test_container_tty_input_and_exit(farm):
    with httpx.Client(base_url=farm.api, timeout=30) as c:
        cid = c.post("/containers", json={"image": "busybox", "command": ["sh"], "tty": True,
                                          "interactive": True}).json()["id"]
        c.post(f"/containers/{cid}/resize", params={"h": 33, "w": 101}).raise_for_status()
        c.post(f"/containers/{cid}/attach/input",
               content=b"stty size; tty; echo hi-$((40+2)); exit 3\n").raise_for_status()
        data = c.get(f"/containers/{cid}/logs",
                     params={"follow": True, "mux": True, "exit": True}).content
        out = b"".join(d for s, d in frames(data) if s == 1)
        exit_rec = json.loads([d for s, d in frames(data) if s == 3][0])
        assert b"hi-42" in out and b"33 101" in out and b"/dev/console" in out
        assert exit_rec["exit_code"] == 3
        c.delete(f"/containers/{cid}").raise_for_status()


def test_exec_tty(farm):
    with httpx.Client(base_url=farm.api, timeout=30) as c:
        cid = c.post("/containers", json={"image": "busybox", "command": ["sleep", "30"]}).json()["id"]
        eid = c.post(f"/containers/{cid}/exec", json={"cmd": ["sh"], "tty": True}).json()["exec_id"]
        c.post(f"/containers/exec/{eid}/input", content=b"tty; exit 4\n").raise_for_status()
        data = c.get(f"/containers/exec/{eid}/output").content
        assert b"/dev/pts/" in b"".join(d for s, d in frames(data) if s == 1)
        assert json.loads([d for s, d in frames(data) if s == 3][0])["exit_code"] == 4
        c.delete(f"/containers/{cid}", params={"force": True}).raise_for_status()


@pytest.mark.parametrize("python_monitor", [True, False], ids=["python-monitor", "minimon"])
def test_runtime_layer_directly(tmp_path_factory, python_monitor, monkeypatch):
    """The runtime layer as the worker calls it, with either monitor."""
    from minibox.runtime import cgroups, logs, minimon
    from minibox.runtime.query import wait_exited
    from minibox.runtime.service import Runtime
    from tests.runtime.farm import remove_cgroups
    root = tmp_path_factory.mktemp("direct")
    monkeypatch.setattr(minimon, "_cache", {str(root): None} if python_monitor else {})
    parent = f"minibox-test-{root.name}"
    monkeypatch.setattr(cgroups, "PARENT", parent)
    import_busybox(root, "busybox")
    rt = Runtime(root)
    ids = []
    try:
        st = rt.run({"image": "busybox", "command": ["sh", "-c", "echo a; echo b >&2; exit 5"]})
        ids.append(st["id"])
        res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
        assert res["exit_code"] == 5
        recs = logs.read_records(str(rt.store.dir(st["id"])))
        assert [(r[1], r[2]) for r in recs] == [("stdout", b"a\n"), ("stderr", b"b\n")]
        comm = open(f"/proc/{st['monitor_pid']}/comm").read() if os.path.exists(
            f"/proc/{st['monitor_pid']}") else ""
        assert comm in ("", "minibox-mon\n")
        st = rt.run({"image": "busybox", "command": ["true"], "autoremove": True})
        res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
        assert res["exit_code"] == 0
        time.sleep(0.2)
        assert not rt.store.dir(st["id"]).exists()
    finally:
        for cid in ids:
            rt.remove(cid, force=True)
        remove_cgroups(parent)

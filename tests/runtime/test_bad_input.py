"""Bad input: a clear error, a non-zero exit, and nothing left behind on the host."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.runtime.conftest import run_ok


def host_snapshot(farm) -> dict:
    parent = farm.env["MINIBOX_CGROUP_PARENT"]
    cg = sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{parent}/*") if p.is_dir())
    mounts = open("/proc/self/mountinfo").read()
    procs = [p for p in os.listdir("/proc") if p.isdigit()]
    comms = []
    for p in procs:
        try:
            comms.append(open(f"/proc/{p}/comm").read().strip())
        except OSError:
            pass
    bridge = Path("/sys/class/net") / farm.env["MINIBOX_BRIDGE"] / "brif"
    leases = farm.root / "net" / "ipam" / "bridge.json"
    return {"containers": sorted(farm.container_ids()), "cgroups": cg,
            "veths": sorted(os.listdir(bridge)) if bridge.is_dir() else [],
            "leases": leases.read_text() if leases.exists() else "{}",
            "mounts": mounts.count(str(farm.root)),
            "monitors": comms.count("minibox-mon"), "tinis": comms.count("tini-static")}


def broken_image(farm) -> str:
    """An image whose only layer blob is deleted after tagging."""
    from minibox.store import LayerInfo, Store
    store = Store(farm.root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("only-file")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    raw = buf.getvalue()
    blob = gzip.compress(raw)
    desc = store.put_blob_bytes(blob, "application/vnd.oci.image.layer.v1.tar+gzip")
    layer = LayerInfo(diff_id="sha256:" + hashlib.sha256(raw).hexdigest(), digest=desc.digest,
                      size=desc.size, media_type=desc.media_type)
    store.write_image("broken", {"Cmd": ["/bin/sh"]}, [layer])
    os.unlink(store.blob_path(layer.digest))
    return "broken"


def settled(farm, want: dict, timeout: float = 2.0) -> dict:
    """The host snapshot once exiting processes are gone (a monitor that reported a failed
    start exits right after its report)."""
    import time
    end = time.monotonic() + timeout
    while True:
        snap = host_snapshot(farm)
        fewer = all(snap[k] <= want[k] for k in ("monitors", "tinis"))
        if fewer or time.monotonic() > end:
            if fewer:   # processes of earlier tests that were still exiting may be gone
                snap.update(monitors=want["monitors"], tinis=want["tinis"])
            return snap
        time.sleep(0.05)


CASES = [
    (("no-such-image", "true"), b"not found"),
    (("-v", "relative:path:bad:x", "busybox", "true"), b"invalid volume"),
    (("-v", "/does/not/exist:/x", "busybox", "true"), b"does not exist"),
    (("-v", "/tmp:relative", "busybox", "true"), b"container path"),
    (("-e", "=novalue", "busybox", "true"), b"invalid environment"),
    (("-m", "lots", "busybox", "true"), b"invalid memory"),
    (("--cpus", "many", "busybox", "true"), b"--cpus"),
    (("--network", "no-such-net", "busybox", "true"), b"network 'no-such-net' not found"),
    (("--network", "bad name!", "busybox", "true"), b"invalid network"),
    (("--sysctl", "kernel.hostname=x", "busybox", "true"), b"not allowed"),
    (("-u", "nobody-here", "busybox", "true"), b"unable to find user"),
    (("--cap-add", "NOT_A_CAP", "busybox", "true"), b"unknown capability"),
    (("busybox", "/no/such/binary"), b"not found"),
    (("broken", "true"), b"cannot be used"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[c[1].decode() for c in CASES])
def test_bad_input_leaves_nothing(farm, args, message):
    if "broken" in args and "broken" not in (farm.root / "index.json").read_text():
        broken_image(farm)
    before = host_snapshot(farm)
    r = farm.cli("run", "--rm", *args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert b"Traceback" not in r.stderr + r.stdout
    assert settled(farm, before) == before
    if args[-1] == "/no/such/binary":
        assert r.returncode == 127


def test_duplicate_name_and_exec_on_stopped(farm):
    cid = run_ok(farm, "run", "-d", "--name", "dup", "busybox", "true").strip()
    before = host_snapshot(farm)
    r = farm.cli("run", "--name", "dup", "busybox", "true")
    assert r.returncode != 0 and b"already in use" in r.stderr
    import time
    time.sleep(0.3)
    r = farm.cli("exec", "dup", "true")
    assert r.returncode != 0 and b"not running" in r.stderr
    r = farm.cli("logs", "no-such-container")
    assert r.returncode != 0 and b"no such container" in r.stderr
    assert host_snapshot(farm)["containers"] == before["containers"]
    run_ok(farm, "rm", cid)

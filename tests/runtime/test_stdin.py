"""stdin of containers and execs with -i (no -t): piped through, binary safe, EOF closes it;
without -i the container's stdin is /dev/null.  Also through the runtime layer directly
with either monitor (the compiled one and the Python fallback)."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import time

import pytest

from tests.runtime.conftest import run_ok

FIVE_MB = 5 * 1024 * 1024


def test_pipe_through_cat(farm):
    r = farm.cli("run", "-i", "--rm", "busybox", "cat", input=b"hello\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hello\n", b"")
    r = farm.cli("run", "-i", "--rm", "busybox", "wc", "-l", input=b"a\nb\n")
    assert r.returncode == 0 and r.stdout.split() == [b"2"]


def test_five_megabytes_binary_arrive_unchanged(farm):
    data = os.urandom(FIVE_MB)
    r = farm.cli("run", "-i", "--rm", "busybox", "cat", input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == FIVE_MB
    assert hashlib.md5(r.stdout).hexdigest() == hashlib.md5(data).hexdigest()
    r = farm.cli("run", "-i", "--rm", "busybox", "sh", "-c", "tee /tmp/x | wc -c; md5sum </tmp/x",
                 input=data, timeout=120)
    assert r.returncode == 0, r.stderr
    count, digest = r.stdout.split()[:2]
    assert int(count) == FIVE_MB and digest.decode() == hashlib.md5(data).hexdigest()


def test_eof_ends_the_container_and_streams_stay_apart(farm):
    r = farm.cli("run", "-i", "--rm", "busybox", "sh", "-c",
                 "while read l; do echo got-$l; echo err-$l >&2; done; exit 7",
                 input=b"x\ny\n", timeout=30)
    assert r.returncode == 7
    assert r.stdout == b"got-x\ngot-y\n" and r.stderr == b"err-x\nerr-y\n"
    r = farm.cli("run", "-i", "--rm", "busybox", "cat", input=b"", timeout=30)
    assert (r.returncode, r.stdout) == (0, b"")


def test_container_that_ignores_its_stdin_does_not_hang(farm):
    t = time.monotonic()
    r = farm.cli("run", "-i", "--rm", "busybox", "head", "-c", "3", input=os.urandom(FIVE_MB),
                 timeout=60)
    assert r.returncode == 0 and len(r.stdout) == 3
    r = farm.cli("run", "-i", "--rm", "busybox", "true", input=os.urandom(FIVE_MB), timeout=60)
    assert r.returncode == 0
    assert time.monotonic() - t < 30


def test_without_i_stdin_is_dev_null(farm):
    t = time.monotonic()
    r = farm.cli("run", "--rm", "busybox", "cat", input=b"must not arrive\n", timeout=30)
    assert (r.returncode, r.stdout) == (0, b"")
    assert time.monotonic() - t < 20
    out = run_ok(farm, "run", "--rm", "busybox", "readlink", "/proc/self/fd/0")
    assert out == "/dev/null\n"


@pytest.mark.parametrize("flags", [[], ["-i"]], ids=["plain", "-i"])
def test_the_container_gets_only_its_stdio(farm, flags):
    """No fd of the engine (report socket, pipes, the terminal's socketpair) reaches tini."""
    out = run_ok(farm, "run", "--rm", *flags, "busybox", "ls", "/proc/1/fd")
    assert out.split() == ["0", "1", "2"]


def test_exec_i(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "60").strip()
    try:
        data = os.urandom(1 << 20)
        r = farm.cli("exec", "-i", cid, "md5sum", input=data, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0].decode() == hashlib.md5(data).hexdigest()
        r = farm.cli("exec", "-i", cid, "sh", "-c", "cat; exit 4", input=b"one\ntwo\n")
        assert (r.returncode, r.stdout) == (4, b"one\ntwo\n")
        r = farm.cli("exec", cid, "cat", input=b"must not arrive\n", timeout=30)
        assert (r.returncode, r.stdout) == (0, b"")
    finally:
        farm.cli("rm", "-f", cid)


def test_stdin_endpoint_refuses_a_container_without_i(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "60").strip()
    try:
        with farm.http(30) as c:
            r = c.post(f"/containers/{cid}/attach/stdin", content=b"x")
            assert r.status_code == 409
    finally:
        farm.cli("rm", "-f", cid)


def _send_frames(sock_path: str, data: bytes) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    for i in range(0, len(data), 65535):
        chunk = data[i:i + 65535]
        s.sendall(b"d" + struct.pack(">H", len(chunk)) + chunk)
    s.sendall(b"c\0\0")
    s.close()


def test_runtime_layer_stdin_frames(direct_runtime):
    """Input frames and the EOF frame on attach.sock, with either monitor."""
    from minibox.runtime.io import logs
    from minibox.runtime.query import wait_exited
    rt = direct_runtime
    st = rt.run({"image": "busybox", "interactive": True,
                 "command": ["sh", "-c", "md5sum; exit 9"]})
    data = os.urandom(300_000)
    d = rt.store.dir(st["id"])
    os.chdir(d)          # a short relative socket path
    _send_frames("attach.sock", data)
    res = wait_exited(rt.store, [st["id"]], 20)[st["id"]]
    assert res["exit_code"] == 9
    out = b"".join(r[2] for r in logs.read_records(str(d)) if r[1] == "stdout")
    assert out.split()[0].decode() == hashlib.md5(data).hexdigest()

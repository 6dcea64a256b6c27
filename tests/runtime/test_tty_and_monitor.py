"""Terminals through the API and the CLI (container -t, -it, -dt and exec -t), and the Python
monitor fallback.  The container's terminal comes from its own devpts instance."""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time


from tests.runtime.conftest import run_ok


def frames(data: bytes):
    while len(data) >= 8:
        stream, size = struct.unpack(">BxxxI", data[:8])
        yield stream, data[8:8 + size]
        data = data[8 + size:]


def test_container_tty_input_and_exit(farm):
    with farm.http(30) as c:
        cid = c.post("/containers", json={"image": "busybox", "command": ["sh"], "tty": True,
                                          "interactive": True}).json()["id"]
        c.post(f"/containers/{cid}/resize", params={"h": 33, "w": 101}).raise_for_status()
        c.post(f"/containers/{cid}/attach/input",
               content=b"stty size; tty; echo hi-$((40+2)); echo pts=$(ls /dev/pts);"
                       b" stat -c %d-%t:%T /dev/console /dev/pts/0 | uniq | wc -l; exit 3\n"
               ).raise_for_status()
        data = c.get(f"/containers/{cid}/logs",
                     params={"follow": True, "mux": True, "exit": True}).content
        out = b"".join(d for s, d in frames(data) if s == 1)
        exit_rec = json.loads([d for s, d in frames(data) if s == 3][0])
        assert b"hi-42" in out and b"33 101" in out
        lines = out.replace(b"\r", b"").split(b"\n")
        assert b"/dev/pts/0" in lines                 # the container's own devpts
        assert b"pts=0 ptmx" in lines                 # and nothing of the host's
        assert b"1" in lines                          # /dev/console is that pts/0
        assert exit_rec["exit_code"] == 3
        c.delete(f"/containers/{cid}").raise_for_status()


def test_container_tty_large_output_does_not_stall(farm):
    """The daemon's input connection to attach.sock never reads the PTY output it is sent:
    megabytes of output must still flow to the log, and the container end."""
    with farm.http(30) as c:
        cid = c.post("/containers", json={"image": "busybox", "command": ["sh"], "tty": True,
                                          "interactive": True}).json()["id"]
        try:
            c.post(f"/containers/{cid}/attach/input",
                   content=b"od -v /dev/zero | head -c 3000000; exit 3\n").raise_for_status()
            # (not read back through /logs: that takes seconds per MB of short lines)
            res = c.post(f"/containers/{cid}/wait", params={"timeout": 20}).json()
            assert res["exit_code"] == 3, res
            logs = (farm.root / "containers" / cid).glob("container.log*")   # rotated too
            assert sum(p.stat().st_size for p in logs) >= 3_000_000
        finally:
            c.delete(f"/containers/{cid}", params={"force": True})


def test_exec_tty(farm):
    with farm.http(30) as c:
        cid = c.post("/containers", json={"image": "busybox", "command": ["sleep", "30"]}).json()["id"]
        eid = c.post(f"/containers/{cid}/exec", json={"cmd": ["sh"], "tty": True}).json()["exec_id"]
        c.post(f"/containers/exec/{eid}/input", content=b"tty; exit 4\n").raise_for_status()
        data = c.get(f"/containers/exec/{eid}/output").content
        assert b"/dev/pts/0" in b"".join(d for s, d in frames(data) if s == 1)
        assert json.loads([d for s, d in frames(data) if s == 3][0])["exit_code"] == 4
        c.delete(f"/containers/{cid}", params={"force": True}).raise_for_status()


class Term:
    """The CLI on a PTY of the test's own, like a person at a terminal."""

    def __init__(self, farm, *args, rows=24, cols=80):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "minibox.cli.main", *args],
                                     env=farm.env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, needle: bytes, timeout: float = 20) -> bytes:
        end = time.monotonic() + timeout
        while needle not in self.seen:
            left = end - time.monotonic()
            assert left > 0, (needle, self.seen)
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:     # EIO: the CLI exited and closed its side
                    break
        assert needle in self.seen, (needle, self.seen)
        return self.seen

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc.send_signal(signal.SIGWINCH)

    def wait(self, timeout: float = 20) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    pass
        return self.proc.wait(1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_cli_run_it_echo_resize_ctrl_c_ctrl_d(farm):
    t = Term(farm, "run", "-it", "--rm", "busybox", "sh", rows=30, cols=90)
    try:
        t.expect(b"# ")
        t.send(b"tty; stty size; echo hi-$((1+2))\r")
        out = t.expect(b"hi-3\r\n")
        assert b"/dev/pts/0" in out and b"30 90" in out
        assert b"echo hi-$((1+2))" in out                 # the terminal echoes what we type
        t.resize(40, 120)
        time.sleep(0.3)
        t.send(b"stty size\r")
        t.expect(b"40 120")
        t.send(b"sleep 30\r")
        time.sleep(0.5)
        started = time.monotonic()
        t.send(b"\x03")                                   # Ctrl-C: to the container's sleep
        t.send(b"echo back-$((2+2))\r")
        t.expect(b"back-4")
        assert time.monotonic() - started < 10
        t.send(b"\x04")                                   # Ctrl-D: the shell exits
        assert t.wait() == 0
    finally:
        t.close()


def test_cli_exec_it_and_detached_tty(farm):
    cid = run_ok(farm, "run", "-dt", "busybox", "sh", "-c", "tty; ls /dev/pts; exec sleep 60").strip()
    t = None
    try:
        deadline = time.monotonic() + 10
        while b"ptmx" not in farm.cli("logs", cid).stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = farm.cli("logs", cid).stdout.replace(b"\r", b"").split(b"\n")
        assert logs[0] == b"/dev/pts/0" and logs[1].split() == [b"0", b"ptmx"], logs
        t = Term(farm, "exec", "-it", cid, "sh")
        t.expect(b"# ")
        t.send(b"tty; echo fds=$(ls /proc/1/fd); echo pts=$(ls /dev/pts); exit 6\r")
        out = t.expect(b"pts=0 1 ptmx")
        assert b"/dev/pts/1" in out and b"fds=0 1 2" in out
        assert t.wait() == 6
    finally:
        if t is not None:
            t.close()
        farm.cli("rm", "-f", cid)


def test_runtime_layer_directly(direct_runtime):
    """The runtime layer as the worker calls it, with either monitor."""
    from minibox.runtime.io import logs
    from minibox.runtime.query import wait_exited
    rt = direct_runtime
    st = rt.run({"image": "busybox", "command": ["sh", "-c", "echo a; echo b >&2; exit 5"]})
    res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
    assert res["exit_code"] == 5
    recs = logs.read_records(str(rt.store.dir(st["id"])))
    assert [(r[1], r[2]) for r in recs] == [("stdout", b"a\n"), ("stderr", b"b\n")]
    try:       # the monitor may be gone already (the container has exited)
        comm = open(f"/proc/{st['monitor_pid']}/comm").read()
    except (FileNotFoundError, ProcessLookupError):
        comm = ""
    assert comm in ("", "minibox-mon\n")
    _tty_through_attach_sock(rt)
    st = rt.run({"image": "busybox", "command": ["true"], "autoremove": True})
    res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
    assert res["exit_code"] == 0
    time.sleep(0.2)
    assert not rt.store.dir(st["id"]).exists()


def _tty_through_attach_sock(rt) -> None:
    """-t: the init's PTY (its own devpts), input and resize frames, output to the client."""
    import socket
    from minibox.runtime.io import logs
    from minibox.runtime.query import wait_exited
    st = rt.run({"image": "busybox", "tty": True,
                 "command": ["sh", "-c", "read x; echo got-$x; tty; stty size; exit 2"]})
    d = rt.store.dir(st["id"])
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            s.connect(f"/proc/self/fd/{dfd}/attach.sock")     # the path may be too long
        finally:
            os.close(dfd)
        s.sendall(b"r" + struct.pack(">H", 5) + b"50 70")
        s.sendall(b"d" + struct.pack(">H", 6) + b"hello\r")
        seen = b""
        s.settimeout(10)
        while b"50 70" not in seen:
            chunk = s.recv(4096)
            if not chunk:
                break
            seen += chunk
        s.close()
        assert b"got-hello" in seen and b"/dev/pts/0" in seen and b"50 70" in seen, seen
        assert wait_exited(rt.store, [st["id"]], 10)[st["id"]]["exit_code"] == 2
        out = b"".join(r[2] for r in logs.read_records(str(d)))
        assert b"/dev/pts/0" in out
    finally:
        rt.remove(st["id"], force=True)

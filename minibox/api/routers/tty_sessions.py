"""Interactive sessions held by the daemon: exec on a PTY, and input to a container's PTY.

A container started with -t has its PTY master in its monitor, served on
``attach.sock`` in the container dir; its output is read from the log (which has all of it,
from the first byte).  An exec with -t runs on a PTY whose master the daemon holds here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios
import threading

from minibox.errors import Conflict, NotFound
from minibox.runtime import streams
from minibox.runtime.state import StateStore

_lock = threading.Lock()
_execs: dict[str, tuple] = {}
_attach: dict[str, socket.socket] = {}


TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def _container_pty(pid: int) -> tuple[int, int]:
    """A PTY pair from the container's own devpts (so `tty` names /dev/pts/N inside)."""
    master = os.open(f"/proc/{pid}/root/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        os.close(master)
        return os.openpty()
    return master, slave


def start_exec(spec: dict) -> str:
    from minibox.runtime.exec import spawn_exec
    master, slave = _container_pty(spec["pid"])
    try:
        proc = spawn_exec(spec, stdin=slave, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    eid = os.urandom(8).hex()
    with _lock:
        _execs[eid] = (master, proc)
    return eid


def _get(eid: str):
    with _lock:
        s = _execs.get(eid)
    if s is None:
        raise NotFound(f"no such exec session: {eid}")
    return s


def exec_output(eid: str):
    master, proc = _get(eid)
    try:
        yield from streams.pty_stream(master, proc)
    finally:
        with _lock:
            _execs.pop(eid, None)
        os.close(master)


def exec_input(eid: str, data: bytes) -> None:
    master, _ = _get(eid)
    os.write(master, data)


def exec_resize(eid: str, rows: int, cols: int) -> None:
    master, _ = _get(eid)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _sock(store: StateStore, cid: str) -> socket.socket:
    with _lock:
        s = _attach.get(cid)
    if s is not None:
        return s
    dfd = os.open(store.dir(cid), os.O_RDONLY | os.O_DIRECTORY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(f"/proc/self/fd/{dfd}/attach.sock")
    except OSError:
        s.close()
        raise Conflict("the container has no terminal to attach to",
                       hint="only containers started with -t (and still running) have one") from None
    finally:
        os.close(dfd)
    with _lock:
        _attach[cid] = s
    return s


def _send(store: StateStore, cid: str, kind: bytes, body: bytes) -> None:
    for attempt in range(2):
        s = _sock(store, cid)
        try:
            for i in range(0, max(1, len(body)), 65535):
                chunk = body[i:i + 65535]
                s.sendall(kind + struct.pack(">H", len(chunk)) + chunk)
            return
        except OSError:
            with _lock:
                _attach.pop(cid, None)
            s.close()
            if attempt:
                raise Conflict("the container's terminal is gone (has it exited?)") from None


def container_input(store: StateStore, cid: str, data: bytes) -> None:
    _send(store, cid, b"d", data)


def container_resize(store: StateStore, cid: str, rows: int, cols: int) -> None:
    _send(store, cid, b"r", f"{rows} {cols}".encode())

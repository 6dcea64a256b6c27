"""Interactive sessions held by the daemon: exec on a PTY, input to a container's PTY, and
stdin (-i without -t) of containers and execs.

A container started with -t has its PTY master in its monitor, served on
``attach.sock`` in the container dir; its output is read from the log (which has all of it,
from the first byte).  An exec with -t runs on a PTY whose master the daemon holds here.
A container started with -i has a stdin pipe in its monitor, fed by frames on the same
socket; an exec with -i has a stdin pipe the daemon holds here.  Either is fed from a
streamed request body (``relay_*_stdin``), with back pressure: a container that does not
read its stdin slows the client down; the end of the body (or a client that went away)
closes the container's stdin, as docker's ``run -i`` does (StdinOnce).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import termios
import threading

from minibox.errors import Conflict, MiniBoxError, NotFound, UserError
from minibox.runtime.io import streams
from minibox.runtime.state import StateStore

_lock = threading.Lock()
_execs: dict[str, tuple] = {}
_attach: dict[str, socket.socket] = {}
_exec_stdin: dict[str, object] = {}      # exec id -> the write end of its stdin (a file)
FRAME_MAX = 65535


TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def _container_pty(pid: int) -> tuple[int, int]:
    """A PTY pair from the container's own devpts (so `tty` names /dev/pts/N inside); never
    one of the host's."""
    try:
        master = os.open(f"/proc/{pid}/root/dev/pts/ptmx",
                         os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise MiniBoxError(f"cannot open a terminal in the container: {e.strerror}") from None
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        os.close(master)
        raise MiniBoxError(f"cannot open a terminal in the container: {e.strerror}") from None
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
    """The exec's output; NotFound now (before any of the answer is sent) when there is no
    such session."""
    master, proc = _get(eid)
    return _exec_output(eid, master, proc)


def _exec_output(eid: str, master: int, proc):
    try:
        yield from streams.pty_stream(master, proc)
    finally:
        with _lock:
            _execs.pop(eid, None)
        os.close(master)


def exec_input(eid: str, data: bytes) -> None:
    master, _ = _get(eid)
    try:
        os.write(master, data)
    except OSError:     # the command ended (EIO) or its session closed (EBADF)
        raise Conflict(f"the exec session {eid} has ended") from None


def exec_resize(eid: str, rows: int, cols: int) -> None:
    master, _ = _get(eid)
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", _dim(rows), _dim(cols), 0, 0))
    except OSError:
        raise Conflict(f"the exec session {eid} has ended") from None


def _dim(n: int) -> int:
    """A terminal dimension as the kernel's winsize holds it (0-65535)."""
    if not 0 <= n <= 0xFFFF:
        raise UserError(f"invalid terminal size {n}", hint="rows and columns are 0-65535")
    return n


def _connect(store: StateStore, cid: str) -> socket.socket:
    """A new connection to the container monitor's attach.sock (through the directory's fd:
    the full path may be longer than a socket address can be)."""
    try:
        dfd = os.open(store.dir(cid), os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise Conflict("the container is gone") from None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(f"/proc/self/fd/{dfd}/attach.sock")
    except OSError:
        s.close()
        raise Conflict("the container has no terminal or open stdin to attach to",
                       hint="only running containers started with -t or -i have one") from None
    finally:
        os.close(dfd)
    return s


def _sock(store: StateStore, cid: str) -> socket.socket:
    with _lock:
        s = _attach.get(cid)
    if s is not None:
        return s
    s = _connect(store, cid)
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
    _send(store, cid, b"r", f"{_dim(rows)} {_dim(cols)}".encode())


# --- stdin (-i without -t) ---------------------------------------------------------------
async def relay_container_stdin(store: StateStore, cid: str, chunks) -> None:
    """Feed the container's stdin from ``chunks`` (an async iterator of bytes) as input
    frames on a connection of its own, then close it (a 'c' frame: the container's EOF)."""
    sock = _connect(store, cid)
    sock.setblocking(False)
    _, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        async for chunk in _until_disconnect(chunks):
            for i in range(0, len(chunk), FRAME_MAX):
                part = chunk[i:i + FRAME_MAX]
                writer.write(b"d" + struct.pack(">H", len(part)) + part)
            await writer.drain()
        writer.write(b"c\0\0")
        await writer.drain()
    except OSError:
        pass        # the container (and its monitor) ended: nothing left to feed
    finally:
        writer.close()


def register_exec_stdin(eid: str, pipe) -> None:
    with _lock:
        _exec_stdin[eid] = pipe


def drop_exec_stdin(eid: str) -> None:
    """The exec ended: close its stdin unless a relay owns it (the relay closes it)."""
    with _lock:
        pipe = _exec_stdin.pop(eid, None)
    if pipe is not None:
        pipe.close()


async def relay_exec_stdin(eid: str, chunks) -> None:
    """Feed an exec's stdin from ``chunks``; closing it at the end is the command's EOF."""
    with _lock:
        pipe = _exec_stdin.pop(eid, None)     # taken: one relay per exec
    if pipe is None:
        raise NotFound(f"no exec session with an open stdin: {eid}",
                       hint="the command may have ended; exec needs -i for stdin")
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    try:
        async for chunk in _until_disconnect(chunks):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass        # the command ended, or closed its stdin
    finally:
        writer.close()      # closes the pipe: EOF


async def _until_disconnect(chunks):
    """The chunks of a request body; a client that went away ends it like EOF."""
    from starlette.requests import ClientDisconnect
    try:
        async for chunk in chunks:
            if chunk:
                yield chunk
    except ClientDisconnect:
        return

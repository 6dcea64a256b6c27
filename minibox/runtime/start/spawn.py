"""Starting a container: have the monitor started and wait for its report.

With a C compiler (minimon.py builds it), the monitor is compiled: the worker
posix_spawns ``minimon --start`` with a start spec (``StartPlan.encode``; nothing of this big,
threaded process is copied), which forks once (its parent exits at once and is reaped here,
so the monitor is nobody's child and survives a SIGKILL of the worker or the daemon), clones
the container's init and builds its rootfs in C (mbstart.c, mbinit.c).  That is about 60%
less CPU per start than the Python monitor and init, which remain the fallback without a
compiler: cloned from the zygote (zygote.py: a small pre-started interpreter, so the forks
are cheap), or, if that is unavailable, from the worker itself (after ``gc.freeze()``, an
intermediate calls setsid and forks the monitor, then exits).  Either monitor reports
``S pid start mpid mstart`` once the container's init has exec'd tini, or ``E code
message`` if it could not start.

After an ``S`` report the socket stays open as the "ack" channel: once state.json is
written the worker sends ``ACK`` (one byte) and closes it (``Started.ack``).  A monitor
that sees EOF without that byte (the worker died, or could not record the start:
``Started.abandon``) kills the container and records exit code 137 with an error, so an
unrecorded start never leaves a running orphan.  A worker that is merely slow never gets
its container killed: the monitor kills only on that EOF, never on a timeout.
"""

from __future__ import annotations

import gc
import os
import select
import socket
from dataclasses import dataclass

from minibox import kernel
from minibox.config import process_settings
from minibox.errors import KernelError, MiniBoxError, UserError
from minibox.runtime.start import minimon, monitor, rootfs
from minibox.wire.runtime import NulInPlan, StartPlan

TINI_PATHS = ("/usr/bin/tini-static", "/usr/local/bin/tini-static", "/sbin/tini-static")
_TINI_FD: list[int] = []
# sent on the report socket once the start is recorded; EOF without it: it never was
ACK = b"k"


@dataclass
class Started:
    pid: int
    pid_start: int
    monitor_pid: int
    monitor_start: int
    ack_fd: int = -1
    net: dict | None = None          # its network (runtime/network.py), if it has one

    def ack(self) -> None:
        """Tell the monitor the start is recorded (one byte, ``ACK``, then close): only then
        may it record the exit (else a fast container could finish, and be auto-removed,
        before its state is written).  Call it only once state.json says "running"."""
        if self.ack_fd >= 0:
            try:
                os.write(self.ack_fd, ACK)
            except OSError:
                pass            # the monitor is gone: its exit record says what happened
            self.abandon()

    def abandon(self) -> None:
        """The start could not be recorded: close without the byte.  The monitor then kills
        the container and records exit code 137 with an error (as if this worker had died,
        which closes the socket the same way)."""
        if self.ack_fd >= 0:
            os.close(self.ack_fd)
            self.ack_fd = -1


class StartError(MiniBoxError):
    """The container could not start; ``exit_code`` is what `run` exits with (127: not found)."""

    kind = "user"
    http_status = 400

    def __init__(self, message: str, code: int):
        super().__init__(message, hint=_hint(code))
        self.code = code
        self.exit_code = code


def _hint(code: int) -> str | None:
    if code == 127:
        return "check the command name and the image's PATH"
    if code == 126:
        return "the file exists but cannot be executed"
    return None


def tini_fd() -> int:
    """An O_PATH-free read fd on tini-static, opened once per worker (close-on-exec)."""
    if not _TINI_FD:
        for p in TINI_PATHS:
            if os.path.exists(p):
                _TINI_FD.append(os.open(p, os.O_RDONLY | os.O_CLOEXEC))
                break
        else:
            raise MiniBoxError("tini-static is not installed",
                               hint="apt-get install tini (it ships /usr/bin/tini-static)")
    return _TINI_FD[0]


def zygote():
    """This process's zygote handle (made on first use; see zygote.py)."""
    if not _ZYGOTE:
        from minibox.runtime.start.zygote import Zygote
        _ZYGOTE.append(Zygote())
    return _ZYGOTE[0]


_ZYGOTE: list = []


def start(plan: StartPlan, timeout: float = 30.0) -> Started:
    tfd = tini_fd()
    spec = _encode(plan, _tini_path(tfd)) if plan.minimon else None
    rs, ws = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    r, w = rs.detach(), ws.detach()
    pid = 0
    try:
        if spec is not None:
            pid = _spawn_compiled(plan.minimon, spec, w)
        elif process_settings().no_zygote or not zygote().spawn(plan, w):
            pid = _fork_monitor(plan, r, w, tfd)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    try:
        line = _read_line(r, timeout)
        started = _parse(line)
    except BaseException:
        os.close(r)
        raise
    finally:
        if pid:
            os.waitpid(pid, 0)   # the intermediate exited long ago: reaping it is free now
    started.ack_fd = r
    return started


def _encode(plan: StartPlan, tini_path: str) -> bytes:
    """The compiled start's spec (see mbstart.c ``parse``): the plan, its namespaces and its
    filesystem as steps (``rootfs.steps``, which the Python init runs too)."""
    try:
        return plan.encode(rootfs.clone_flags(plan), rootfs.steps(plan, tini_path),
                           rootfs.INIT_PATH)
    except NulInPlan as e:
        raise UserError(str(e), hint="commands, environment and paths cannot contain NUL") \
            from None


def _tini_path(fd: int) -> str:
    if not _TINI_PATH:
        _TINI_PATH.append(os.readlink(f"/proc/self/fd/{fd}"))
    return _TINI_PATH[0]


_TINI_PATH: list[str] = []


def _spawn_compiled(exe: str, spec: bytes, report_w: int) -> int:
    """``minimon --start`` (mbstart.c) with the spec on fd 3 and the report socket on fd 4:
    posix_spawn (vfork), so nothing of this big, threaded process is copied, and with the
    GIL released (see minimon.spawn).  Returns the pid of the intermediate, which forks the
    monitor and exits at once (reap it)."""
    return minimon.spawn(exe, "--start", spec, [(report_w, 4)])


def _fork_monitor(plan: StartPlan, r: int, w: int, tfd: int) -> int:
    """The fallback without a zygote: fork the monitor out of this (big) process."""
    gc.collect()
    gc.freeze()
    pid = os.fork()    # os.fork: the worker may have threads (at-fork handlers matter)
    if pid == 0:   # pragma: no cover - runs in the child
        try:
            os.close(r)
            os.setsid()
            # single-threaded now: a raw clone skips Python's at-fork work (~2 ms here)
            if kernel.clone_process(0) == 0:
                monitor.main(plan, w, tfd)
        finally:
            os._exit(0)
    return pid


def _read_line(fd: int, timeout: float) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise KernelError(f"the container did not start within {timeout:.0f}s")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace").strip()


def _parse(line: str) -> Started:
    if line.startswith("S "):
        pid, start, mpid, mstart = (int(x) for x in line[2:].split())
        return Started(pid, start, mpid, mstart)
    if line.startswith("E "):
        code_text, _, msg = line[2:].partition(" ")
        code = int(code_text) if code_text.lstrip("-").isdigit() else 1
        if code in (126, 127):
            raise StartError(msg, code)
        raise KernelError(msg or "the container failed to start")
    raise KernelError("the container's monitor exited without a report",
                      hint="see the runtime worker's log")

"""A small pre-started process that runs each build block's sandbox itself, one at a time.

Forking the sandbox straight out of a Celery pool process copies a ~70 MB address space.  The
zygote is a fresh interpreter that imports only the sandbox (supervisor, steps, mounts,
process); and it does not fork per block either: a fork of even that ~23 MB process cost
~1000 copy-on-write faults in the sandbox, ~230 in the zygote after it, the clone and the
exit teardown (~4-5 ms of CPU a block).  Instead, per block, the zygote enters fresh
namespaces itself (``supervisor.run_sandbox``: unshare mount/UTS/IPC and net, or setns into
the build network's namespace it is sent), mounts, runs the steps (each RUN still the PID 1
of a new PID namespace, its child), and then goes home (``Home``): setns back into the mount,
UTS, IPC, net (and PID-for-children) namespaces it opened at start (the block's mount
namespace, and every mount in it, dies as the last process leaves it), its cwd, umask,
signal handlers and mask, process name; every fd received for the block is closed.  If it
cannot go home, or the block left an fd open that it cannot vouch for, it exits after
reporting (the worker starts a new one for the next block): a block never runs in a dirty
zygote.  setns into a mount namespace needs a single-threaded process: the zygote starts no
thread (it refuses to serve with one).

Protocol, on a SEQPACKET socketpair the worker made (``Zygote``), one block at a time (a
pool process runs one block at a time): the worker sends the spec (JSON) with the sandbox's
output and control pipes and, on the build network, its namespace attached (SCM_RIGHTS);
the zygote answers ``{"pid"}`` (its own: the worker signals it through the pidfd it holds)
as the block starts and ``{"pid", "status"}`` (a wait status: 0, exit 1 for a reported
failure, exit 130 when cancelled; ``"restart"`` set if it exits next) once it is home and
has closed the block's fds.  SIGTERM during a block cancels the block (its step's PID 1 is
killed and waited for), not the zygote; a zygote that does not report within ``REAP_WAIT``
of the worker's closing is SIGKILLed and started again for the next block.

Lifetime: the zygote has PDEATHSIG=SIGKILL on the worker process (each RUN's PID 1 on the
zygote): a worker killed mid-block takes the whole chain with it.  It exits when the
worker's end of the socket closes, and between blocks ignores SIGINT/SIGTERM (a terminal's or
a service manager's signal to the group is for the worker to handle).  If it is gone or
cannot be started, ``run_block`` forks a sandbox in-process as before (and so it does with
MINIBOX_NO_ZYGOTE set).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from minibox import kernel
from minibox.errors import KernelError
from minibox.runtime.start.zygote import Zygote as RuntimeZygote

MAX_MSG = 200_000         # a spec must fit one SEQPACKET message; bigger: fork in-process
_REPLY = 4096
REAP_WAIT = 10.0          # after the worker closes a block: then the zygote is SIGKILLed
NAME = "minibox-bzygote"  # (15 characters: "comm" holds no more)
log = logging.getLogger(__name__)


class Spawned:
    """A block the zygote is running: signal it (SIGTERM cancels the block), then reap it
    (the block's wait status)."""

    def __init__(self, zygote: "Zygote", pid: int):
        self.zygote, self.pid = zygote, pid

    def signal(self, sig: int) -> None:
        self.zygote.signal(sig)

    def reap(self) -> int:
        """The block's wait status, once the zygote is home (SIGKILL after REAP_WAIT)."""
        return self.zygote.status_of(self.pid)


class Zygote(RuntimeZygote):
    """A worker process's handle on its zygote: started on first use (or by ``ensure``),
    started again once if it died (the runtime's zygote handle, with this protocol)."""

    def __init__(self):
        super().__init__()
        self.owner = os.getpid()
        self.pidfd: int | None = None     # signals reach this zygote, never a recycled PID

    def _argv(self, fd: int) -> list[str]:
        return [sys.executable, "-m", "minibox.sandbox.zygote", str(fd), str(os.getpid())]

    def _start(self) -> None:
        super()._start()
        self.pidfd = kernel.pidfd_open(self.proc.pid)

    def _stop(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        super()._stop()

    def signal(self, sig: int) -> None:
        if self.pidfd is not None:
            try:
                kernel.pidfd_send_signal(self.pidfd, sig)
            except KernelError:
                pass                      # already gone

    def spawn(self, spec: dict, fds: list[int]) -> Spawned | None:  # type: ignore[override]
        """Have the zygote run a sandbox for ``spec`` with ``fds`` (out_w, ctl_w[, netns]);
        None if it cannot (then the caller forks in-process)."""
        data = json.dumps(spec).encode()
        if len(data) > MAX_MSG:
            return None
        with self.lock:
            if self.failed_at and time.monotonic() - self.failed_at < self.RETRY_AFTER:
                return None
            for _attempt in range(2):
                try:
                    if self.sock is None:
                        self._start()
                    socket.send_fds(self.sock, [data], fds)
                    while True:       # (skipping the status of a block nobody reaped)
                        reply = json.loads(self.sock.recv(_REPLY) or b"{}")
                        if "status" not in reply:
                            break
                    if reply.get("pid") != self.proc.pid:
                        raise OSError("the sandbox zygote could not start the block")
                    return Spawned(self, self.proc.pid)
                except (OSError, ValueError, KeyError):
                    self._stop()         # died or confused: start a new one, once
            self.failed_at = time.monotonic()
            return None

    def status_of(self, pid: int) -> int:
        """The wait status the zygote reports for the block it runs as ``pid``: SIGKILL's
        if it does not within REAP_WAIT (then it is killed, and started again next time)."""
        deadline = time.monotonic() + REAP_WAIT
        try:
            while True:
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
                msg = json.loads(self.sock.recv(_REPLY) or b"{}")
                if not msg:
                    raise OSError("the sandbox zygote is gone")
                if msg.get("pid") == pid and "status" in msg:
                    if msg.get("restart"):
                        log.warning("the sandbox zygote exits after a block: %s",
                                    msg["restart"])
                        with self.lock:
                            self._stop()
                    return int(msg["status"])
        except (OSError, ValueError, AttributeError):
            self.signal(signal.SIGKILL)
            with self.lock:
                self._stop()
            return signal.SIGKILL        # reads as "killed by signal 9"
        finally:
            if self.sock is not None:
                self.sock.settimeout(None)


_handle: Zygote | None = None
_handle_lock = threading.Lock()


def handle() -> Zygote:
    """This process's zygote handle (a forked pool process makes its own)."""
    global _handle
    with _handle_lock:
        if _handle is None or _handle.owner != os.getpid():
            _handle = Zygote()
        return _handle


class Home:
    """The zygote's own namespaces and process state, saved at start, put back after each
    block (``restore``), and the check that the block left no fd behind (``check_fds``)."""

    _NAMESPACES = (("mnt", kernel.CLONE_NEWNS), ("uts", kernel.CLONE_NEWUTS),
                   ("ipc", kernel.CLONE_NEWIPC), ("net", kernel.CLONE_NEWNET),
                   ("pid", kernel.CLONE_NEWPID))     # pid: where the next child is born
    _SIGNALS = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]
    MAX_CACHED_FDS = 16   # fds a module may keep open from its first use (process.py's)

    def __init__(self):
        self.ns = [(kind, os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
                   for name, kind in self._NAMESPACES]
        self.cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.handlers = {s: signal.getsignal(s) for s in self._SIGNALS}
        self.fds = _open_fds()
        self.max_fds = len(self.fds) + self.MAX_CACHED_FDS

    def restore(self) -> str | None:
        """Back home; what went wrong if it could not (then the zygote must exit)."""
        try:
            signal.signal(signal.SIGTERM, self.handlers[signal.SIGTERM])  # first: no cancel
            for kind, fd in self.ns:        # (the mount namespace also resets root and cwd)
                kernel.setns(fd, kind)
            os.fchdir(self.cwd)
            os.umask(self.umask)
            for sig, handler in self.handlers.items():
                if handler is not None and signal.getsignal(sig) != handler:
                    signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
            kernel.set_process_name(NAME)
            gc.enable()
        except BaseException as e:  # noqa: BLE001 - any failure means: do not go on
            return f"cannot go back to its own namespaces and state: {type(e).__name__}: {e}"
        return None

    def check_fds(self, orderly: bool) -> str | None:
        """None if the fds open now are the zygote's own.  A block that ended in order (done
        or a reported error) may leave a module's cache (opened once, on first use); a
        cancelled one may have been interrupted between an open and its close."""
        now = _open_fds()
        if now == self.fds:
            return None
        if not orderly or not now > self.fds or len(now) > self.max_fds:
            return f"the block changed its open fds ({len(self.fds)} before, {len(now)} after)"
        self.fds = now
        return None


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _serve(sock: socket.socket, home: Home, spec, fds: list[int]) -> None:
    """Run one block here, go home, close its fds, report; exit if it left dirt."""
    from minibox.sandbox import supervisor

    me = os.getpid()
    supervisor.cancel.reset()
    signal.signal(signal.SIGTERM, supervisor.cancel.on_signal)   # before the worker can
    try:                                                         # send one
        sock.send(json.dumps({"pid": me}).encode())
    except OSError:
        os._exit(0)                                # the worker is gone
    gc.disable()
    kernel.set_process_name("minibox-sandbox")
    netns = fds[2] if len(fds) == 3 else None
    try:
        code = supervisor.run_sandbox(spec, supervisor.Pipes(fds[0], fds[1]), netns)
    except supervisor.Cancel:      # landed past run_sandbox's own handlers
        code = supervisor.CANCEL_EXIT
    except BaseException:  # noqa: BLE001 - whatever it was, the zygote goes home first
        code = 1
    problem = home.restore()
    for f in fds:
        try:
            os.close(f)
        except OSError:            # the block closed it: its number may be reused since
            problem = problem or f"the block closed fd {f}, which was the zygote's to close"
    if problem is None:
        problem = home.check_fds(orderly=code != supervisor.CANCEL_EXIT)
    reply = {"pid": me, "status": code << 8}
    if problem:
        reply["restart"] = problem
    try:
        sock.send(json.dumps(reply).encode())
    except OSError:
        os._exit(0)                                # the worker is gone
    if problem:
        os._exit(1)


def main(fd: int, worker: int) -> None:   # pragma: no cover - runs in the zygote process
    kernel.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != worker:                     # the worker died before that
        os._exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (an ignored one is inherited): we reap
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    from minibox.sandbox import process
    from minibox.sandbox.spec import SandboxSpec
    # what a sandbox imports on its way (COPY sources, the build network's resolv.conf):
    # imported here once, not in every block
    import minibox.builder.context  # noqa: F401
    import minibox.net.resolv  # noqa: F401

    process.prepare()                              # the seccomp filter, compiled once
    kernel.set_process_name(NAME)
    if len(os.listdir("/proc/self/task")) != 1:    # setns into a mount namespace would fail
        os._exit(1)
    os.set_inheritable(fd, False)                  # no step's process may inherit it
    sock = socket.socket(fileno=fd)
    home = Home()
    gc.collect()
    gc.freeze()
    sock.sendall(b"ready")
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, 3,
                                                      socket.MSG_CMSG_CLOEXEC)
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)                                # the worker is gone
        try:
            spec = SandboxSpec.from_dict(json.loads(msg))
            if len(fds) not in (2, 3):
                raise ValueError("want the output and control pipes (and a namespace)")
        except Exception:  # noqa: BLE001 - a bad request gets no sandbox
            for f in fds:
                os.close(f)
            sock.send(b"{}")
            continue
        _serve(sock, home, spec, fds)


if __name__ == "__main__":   # pragma: no cover
    main(int(sys.argv[1]), int(sys.argv[2]))

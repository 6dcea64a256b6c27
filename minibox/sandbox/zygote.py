"""A small pre-started process each build worker process forks its block sandboxes from.

Forking the sandbox straight out of a Celery pool process copies a ~70 MB address space:
the fork's page-table copy, the copy-on-write faults the worker then takes, and tearing the
copy down again (the sandbox's exit, each RUN's exec) cost ~30 ms of CPU a block, a third
of a one-line block's (waves benchmark, measured side by side).  The zygote is a fresh
interpreter that imports only the sandbox (supervisor, steps, mounts, process), so the
sandbox and every RUN's PID 1 are forks of a ~23 MB process.  Namespaces, mounts, seccomp, capabilities: unchanged, the same
``supervisor.sandbox_main`` runs in the child.

Protocol, on a SEQPACKET socketpair the worker made (``Zygote``), one block at a time (a
pool process runs one block at a time): the worker sends the spec (JSON) with the sandbox's
output and control pipes and, on the build network, its namespace attached (SCM_RIGHTS);
the zygote forks the sandbox, answers ``{"pid"}`` with a pidfd of it attached (the worker
signals it through that: never a recycled PID), reaps it and sends ``{"pid", "status"}``.

Lifetime: the zygote has PDEATHSIG=SIGKILL on the worker process (and the sandbox on the
zygote, each RUN on the sandbox): a worker killed mid-block takes the whole chain with it.
It exits when the worker's end of the socket closes, and ignores SIGINT/SIGTERM (a
terminal's or a service manager's signal to the group is for the worker to handle).  If it
is gone or cannot be started, ``run_block`` forks in-process as before (and so it does with
MINIBOX_NO_ZYGOTE set).
"""

from __future__ import annotations

import gc
import json
import os
import select
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
REAP_WAIT = 10.0          # after this the sandbox is SIGKILLed (as the fork path does)


class Spawned:
    """A sandbox the zygote forked: signal it, then reap it (its exit status)."""

    def __init__(self, zygote: "Zygote", pid: int, pidfd: int):
        self.zygote, self.pid, self.pidfd = zygote, pid, pidfd

    def signal(self, sig: int) -> None:
        try:
            kernel.pidfd_send_signal(self.pidfd, sig)
        except KernelError:
            pass                      # already gone

    def reap(self) -> int:
        """Wait for the sandbox to exit (SIGKILL after REAP_WAIT); its wait status."""
        try:
            if not select.select([self.pidfd], [], [], REAP_WAIT)[0]:
                self.signal(signal.SIGKILL)
            return self.zygote.status_of(self.pid)
        finally:
            os.close(self.pidfd)


class Zygote(RuntimeZygote):
    """A worker process's handle on its zygote: started on first use (or by ``ensure``),
    started again once if it died (the runtime's zygote handle, with this protocol)."""

    def __init__(self):
        super().__init__()
        self.owner = os.getpid()

    def _argv(self, fd: int) -> list[str]:
        return [sys.executable, "-m", "minibox.sandbox.zygote", str(fd), str(os.getpid())]

    def spawn(self, spec: dict, fds: list[int]) -> Spawned | None:  # type: ignore[override]
        """Fork a sandbox for ``spec`` with ``fds`` (out_w, ctl_w[, netns]); None if the
        zygote cannot (then the caller forks in-process)."""
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
                    while True:       # (skipping the status of a sandbox nobody reaped)
                        msg, got, _flags, _addr = socket.recv_fds(self.sock, _REPLY, 1)
                        reply = json.loads(msg) if msg else {}
                        if "status" not in reply:
                            break
                    pid = reply.get("pid", 0)
                    if not pid or len(got) != 1:
                        for fd in got:
                            os.close(fd)
                        raise OSError("the sandbox zygote could not fork")
                    return Spawned(self, pid, got[0])
                except (OSError, ValueError, KeyError):
                    self._stop()         # died or confused: start a new one, once
            self.failed_at = time.monotonic()
            return None

    def status_of(self, pid: int) -> int:
        """The wait status the zygote reports for its sandbox ``pid`` (it has exited, or
        was SIGKILLed: the report comes at once)."""
        try:
            self.sock.settimeout(30)
            while True:
                msg = json.loads(self.sock.recv(_REPLY) or b"{}")
                if msg.get("pid") == pid and "status" in msg:
                    return int(msg["status"])
                if not msg:
                    raise OSError("the sandbox zygote is gone")
        except (OSError, ValueError, AttributeError):
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


def main(fd: int, worker: int) -> None:   # pragma: no cover - runs in the zygote process
    kernel.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != worker:                     # the worker died before that
        os._exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (an ignored one is inherited): we reap
    from minibox.sandbox import process, supervisor
    from minibox.sandbox.spec import SandboxSpec
    # what a sandbox imports on its way (COPY sources, the build network's resolv.conf):
    # imported here once, not in every sandbox
    import minibox.builder.context  # noqa: F401
    import minibox.net.resolv  # noqa: F401

    process.prepare()                              # the seccomp filter, compiled once
    kernel.set_process_name("minibox-bzygote")   # (15 characters: "comm" holds no more)
    sock = socket.socket(fileno=fd)
    gc.collect()
    gc.freeze()
    sock.sendall(b"ready")
    me = os.getpid()
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, 3)
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
        netns = fds[2] if len(fds) == 3 else None
        pid = os.fork()
        if pid == 0:
            sock.close()
            supervisor.sandbox_main(spec, supervisor.Pipes(fds[0], fds[1]), me, netns)
        for f in fds:
            os.close(f)
        pidfd = kernel.pidfd_open(pid)
        try:
            socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
        finally:
            os.close(pidfd)
        while True:
            try:
                status = os.waitpid(pid, 0)[1]
                break
            except InterruptedError:
                continue
        sock.send(json.dumps({"pid": pid, "status": status}).encode())


if __name__ == "__main__":   # pragma: no cover
    main(int(sys.argv[1]), int(sys.argv[2]))

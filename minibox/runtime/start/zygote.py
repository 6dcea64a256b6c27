"""A small pre-started process the runtime worker clones container monitors from.

Forking the monitor straight out of the Celery worker copies a ~60 MB process three times
(the intermediate, the monitor, the container's init) and pays a copy-on-write fault for
every page Python's reference counting touches afterwards; that was a third of a start.
The zygote is a fresh interpreter that imports only what a monitor and a container's init
need, so those forks are cheap.

Protocol, on a socketpair the worker made (``Zygote``): the worker sends one message per
container, a pickled plan with the report socket's write end attached (SCM_RIGHTS).  The
zygote clones the monitor straight away (no intermediate: the zygote ignores SIGCHLD, so
the kernel reaps its exited monitors; the monitor restores SIGCHLD and calls setsid); the
monitor reports on that socket as usual.  If the worker dies, the zygote exits and the
monitors are re-parented like any orphan.  The zygote
answers nothing and exits when the worker's end closes.  If it is gone or cannot be
started, ``spawn.start`` forks in-process as before.
"""

from __future__ import annotations

import array
import gc
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time

from minibox import kernel

MAX_MSG = 100_000    # a SEQPACKET message must fit the socket buffer (~208 KiB); bigger: fork


class Zygote:
    """The worker's handle: started lazily, restarted once if it died."""

    RETRY_AFTER = 60.0     # after a failed start of the zygote, fork in-process this long

    def __init__(self):
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.failed_at = 0.0

    def _argv(self, fd: int) -> list[str]:
        """How to start the zygote, given its end of the socket (the build sandbox's
        zygote, ``minibox.sandbox.zygote``, is started the same way)."""
        return [sys.executable, "-m", "minibox.runtime.start.zygote", str(fd)]

    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                self._argv(child.fileno()),
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            child.close()
        # the zygote says it is ready once its imports are done
        parent.settimeout(30)
        if parent.recv(16) != b"ready":
            parent.close()
            raise OSError("the zygote did not start")
        parent.settimeout(None)
        self.sock = parent

    def ensure(self) -> None:
        with self.lock:
            if self.sock is None:
                self._start()

    def spawn(self, plan, report_w: int) -> bool:
        """Have the zygote start this container's monitor; False if it cannot (use fork)."""
        data = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_MSG:
            return False
        with self.lock:
            if time.monotonic() - self.failed_at < self.RETRY_AFTER and self.failed_at:
                return False
            for _attempt in range(2):
                try:
                    if self.sock is None:
                        self._start()
                    self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                array.array("i", [report_w]))])
                    return True
                except OSError:
                    self._stop()      # died meanwhile: start a new one, once
            self.failed_at = time.monotonic()
            return False

    def _stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.proc = None


def main(fd: int) -> None:   # pragma: no cover - runs in the zygote process
    from minibox.runtime.start import monitor, spawn   # everything a monitor and an init use
    sock = socket.socket(fileno=fd)
    tini = spawn.tini_fd()
    kernel.set_process_name("minibox-zygote")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)    # exited monitors are reaped by the kernel
    gc.collect()
    gc.freeze()
    sock.sendall(b"ready")
    while True:
        try:
            msg, anc, _flags, _addr = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(4 * 4))
        except InterruptedError:
            continue
        fds = array.array("i")
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % 4])
        if not msg:
            os._exit(0)          # the worker is gone
        if len(fds) != 1:
            for f in fds:
                os.close(f)
            continue
        report_w = fds[0]
        try:
            plan = pickle.loads(msg)
        except Exception:  # noqa: BLE001
            os.close(report_w)
            continue
        pid = kernel.clone_process(0)     # single-threaded: no at-fork work needed
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # the monitor reaps its init
                sock.close()
                os.setsid()
                monitor.main(plan, report_w, tini)
            finally:
                os._exit(0)
        os.close(report_w)


if __name__ == "__main__":   # pragma: no cover
    main(int(sys.argv[1]))

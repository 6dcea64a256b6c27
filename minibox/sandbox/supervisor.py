"""The sandbox process: a child of the worker's zygote (zygote.py), or of the worker.

worker ── zygote ── sandbox (new mount (private), UTS, IPC, net namespaces; mounts the
                    │        overlay; runs COPY/WORKDIR/USER in Python; reports to the
                    │        worker over a JSON-lines pipe)
                    └── per RUN/PKG/AUTO-DEPS: PID 1 of a new PID namespace (process.py)
                        ── the command

Every process below the worker has PDEATHSIG=SIGKILL: if the worker is SIGKILLed its zygote
dies, then the sandbox, then the step's PID 1, and with it its whole PID namespace; the mount namespace (and
every mount in it) goes with its last process.  On SIGTERM (the worker cancelling) the
sandbox kills the running step and waits for it before exiting, so by the time the worker
has reaped the sandbox nothing of it is left.  RUN output goes straight from the processes to
the worker through a second pipe.  ``sandbox_main`` ends in ``os._exit``: it runs in a
forked copy of the zygote (or of the worker) and must never return into its code.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import time
import traceback
from dataclasses import dataclass

from minibox import kernel
from minibox.errors import BuildFailed, KernelError, MiniBoxError
from minibox.sandbox import process
from minibox.sandbox.mounts import Mounts
from minibox.sandbox.steps import StepRunner, describe

CANCEL_EXIT = 130


@dataclass
class Pipes:
    out_w: int          # RUN output (stdout and stderr merged)
    ctl_w: int          # JSON-lines messages for the worker


class Channel:
    def __init__(self, fd: int):
        self.fd = fd

    def send(self, msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def sandbox_main(spec, pipes: Pipes, worker_pid: int, netns_fd: int | None = None) -> None:
    """Set the sandbox up, run every step, tear it down; report over ``pipes.ctl_w``."""
    gc.disable()          # short-lived: a collection would walk (and copy) the worker's pages
    chan = Channel(pipes.ctl_w)
    code = 1
    step = mounts = None
    try:
        kernel.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != worker_pid:             # the worker died before PDEATHSIG was set
            raise BuildFailed("the build sandbox's parent (the worker or its zygote) died "
                              "as the sandbox started")
        _own_signals()
        kernel.set_process_name("minibox-sandbox")
        t0 = time.monotonic()
        mounts = Mounts(spec)
        _enter(spec, mounts, netns_fd)
        chan.send({"t": "ready", "seconds": time.monotonic() - t0})
        runner = StepRunner(spec, mounts, pipes.out_w,
                            lambda ev: chan.send({"t": "event", "event": ev}))
        for step in spec.steps:
            chan.send({"t": "event", "event": {"type": "step", "line": step.get("line", 0),
                                               "op": step["op"], "text": describe(step)}})
            s0 = time.monotonic()
            runner.run(step)
            chan.send({"t": "step_done", "line": step.get("line", 0), "op": step["op"],
                       "seconds": time.monotonic() - s0})
        mounts.finish()
        chan.send({"t": "done"})
        code = 0
    except OSError as e:
        line = step.get("line", "?") if step else "?"
        _report(pipes.ctl_w, BuildFailed(f"line {line}: {e.strerror or e}"
                                         + (f": {e.filename}" if e.filename else "")))
    except BaseException as e:  # noqa: BLE001 - must end in _exit
        _report(pipes.ctl_w, e)
    finally:
        if code and mounts is not None:            # tidy the failed block's upper dir too
            with contextlib.suppress(BaseException):
                mounts.finish()
        os._exit(code)


def _enter(spec, mounts: Mounts, netns_fd: int | None) -> None:
    """Network: ``build`` joins the prepared namespace ``netns_fd`` (on the build bridge),
    ``none`` a new empty one, ``host`` stays in the host's (opt-in)."""
    os.umask(0o022)
    flags = kernel.CLONE_NEWNS | kernel.CLONE_NEWUTS | kernel.CLONE_NEWIPC
    if spec.network == "none":
        flags |= kernel.CLONE_NEWNET
    elif spec.network == "build":
        if netns_fd is None:
            raise KernelError("a build-network sandbox was started without its namespace")
        kernel.setns(netns_fd, kernel.CLONE_NEWNET)
        os.close(netns_fd)
    kernel.unshare(flags)
    kernel.make_private("/")
    kernel.sethostname(spec.hostname)
    if spec.network == "none":
        kernel.set_link_up("lo")
    mounts.mount_root()


def _report(fd: int, e: BaseException) -> None:
    if isinstance(e, MiniBoxError):
        msg = {"t": "error", "error": e.to_dict(), "tail": bool(getattr(e, "want_tail", False))}
    else:
        msg = {"t": "error", "tail": False,
               "error": {"kind": "internal", "message": f"the build sandbox failed: "
                                                        f"{type(e).__name__}: {e}",
                         "hint": traceback.format_exc(limit=8)}}
    try:
        Channel(fd).send(msg)
    except OSError:
        pass


def _on_cancel(_sig, _frame) -> None:
    """SIGTERM from the worker: kill the running step, wait until its namespace is gone."""
    pid = process.current_child
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    os._exit(CANCEL_EXIT)


def _own_signals() -> None:
    """Drop whatever handlers the worker (Celery, pytest) installed; SIGTERM cancels."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_cancel)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

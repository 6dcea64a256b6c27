"""The build sandbox: one block's steps in fresh namespaces over its overlay.

worker ── zygote: runs the sandbox itself, one block after another (zygote.py): enters
          │        new mount (private), UTS, IPC and net namespaces, mounts the overlay, runs
          │        COPY/WORKDIR/USER in Python, reports to the worker over a JSON-lines pipe,
          │        then goes back to its own namespaces (``run_sandbox``)
          └── per RUN/PKG/AUTO-DEPS: PID 1 of a new PID namespace (process.py) ── the command

Without a zygote (MINIBOX_NO_ZYGOTE, or it cannot start) the worker forks a sandbox process
that does the same (``sandbox_main``) and exits.

Every process below the worker has PDEATHSIG=SIGKILL: if the worker is SIGKILLed its zygote
(or forked sandbox) dies, then the step's PID 1, and with it its whole PID namespace; the
block's mount namespace (and every mount in it) goes once no process is in it.  On SIGTERM
(the worker cancelling) the running step's PID 1 is killed and waited for, and the block
unwinds (``Cancel``): by the time the worker has its status nothing of the block is left.
RUN output goes straight from the processes to the worker through a second pipe.
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
    """JSON lines to the worker.  ``hold`` keeps a message the worker needs no sooner than
    the next one (it then comes in the same write: one wake-up of the worker less)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.held: list[str] = []

    def hold(self, msg: dict) -> None:
        self.held.append(json.dumps(msg) + "\n")

    def send(self, msg: dict) -> None:
        self.held.append(json.dumps(msg) + "\n")
        data = "".join(self.held).encode()
        self.held.clear()
        while data:
            data = data[os.write(self.fd, data):]


class Cancel(BaseException):
    """The worker cancelled the block (SIGTERM); raised once, by the signal handler."""


class _CancelState:
    """SIGTERM's handler raises ``Cancel`` once, and only while a block is running (armed):
    one arriving before that is remembered, one arriving after is a no-op."""

    def __init__(self) -> None:
        self.armed = self.requested = False

    def reset(self) -> None:
        self.armed = self.requested = False

    def arm(self) -> None:
        self.armed = True
        if self.requested:
            self.fire()

    def disarm(self) -> None:
        self.armed = False

    def on_signal(self, _sig, _frame) -> None:
        self.requested = True
        if self.armed:
            self.fire()

    def fire(self) -> None:
        self.armed = False
        _kill_step()
        raise Cancel()


cancel = _CancelState()


def sandbox_main(spec, pipes: Pipes, worker_pid: int, netns_fd: int | None = None) -> None:
    """A forked sandbox process (no zygote): run the block, then ``os._exit`` (it is a copy of
    the worker and must never return into its code)."""
    gc.disable()          # short-lived: a collection would walk (and copy) the worker's pages
    code = 1
    try:
        kernel.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != worker_pid:             # the worker died before PDEATHSIG was set
            raise BuildFailed("the build sandbox's parent (the worker or its zygote) died "
                              "as the sandbox started")
        cancel.reset()
        _own_signals()
        kernel.set_process_name("minibox-sandbox")
        code = run_sandbox(spec, pipes, netns_fd)
    except Cancel:
        code = CANCEL_EXIT
    except BaseException as e:  # noqa: BLE001 - must end in _exit
        _report(Channel(pipes.ctl_w), e)
    finally:
        os._exit(code)


def run_sandbox(spec, pipes: Pipes, netns_fd: int | None = None) -> int:
    """Enter the block's namespaces, mount, run every step, unmount; report over
    ``pipes.ctl_w``.  The exit code: 0, 1 (reported as an error) or CANCEL_EXIT.

    Leaves the process in the block's namespaces, with its umask and signal mask changed:
    the caller either exits or restores them (zygote.py).  SIGTERM must be routed to
    ``cancel.on_signal``; ``Cancel`` can still escape (once) if it lands past this
    function's own handlers.  The fds in ``pipes`` and ``netns_fd`` stay the caller's."""
    chan = Channel(pipes.ctl_w)
    code = 1
    step = mounts = None
    try:
        cancel.arm()
        t0 = time.monotonic()
        mounts = Mounts(spec)
        _enter(spec, mounts, netns_fd)
        chan.hold({"t": "ready", "seconds": time.monotonic() - t0})
        runner = StepRunner(spec, mounts, pipes.out_w,
                            lambda ev: chan.send({"t": "event", "event": ev}))
        for step in spec.steps:
            chan.send({"t": "event", "event": {"type": "step", "line": step.get("line", 0),
                                               "op": step["op"], "text": describe(step)}})
            s0 = time.monotonic()
            runner.run(step)
            chan.hold({"t": "step_done", "line": step.get("line", 0), "op": step["op"],
                       "seconds": time.monotonic() - s0})
        mounts.finish()
        chan.send({"t": "done"})
        code = 0
    except Cancel:
        code, mounts = CANCEL_EXIT, None         # the namespace takes the mounts with it
    except OSError as e:
        line = step.get("line", "?") if step else "?"
        _report(chan, BuildFailed(f"line {line}: {e.strerror or e}"
                                  + (f": {e.filename}" if e.filename else "")))
    except BaseException as e:  # noqa: BLE001 - reported, never raised into the caller
        _report(chan, e)
    finally:
        if code == 1 and mounts is not None:       # tidy the failed block's upper dir too
            with contextlib.suppress(Exception):
                mounts.finish()
        cancel.disarm()
    return code


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
    kernel.unshare(flags)
    kernel.make_private("/")
    kernel.sethostname(spec.hostname)
    if spec.network == "none":
        kernel.set_link_up("lo")
    mounts.mount_root()


def _report(chan: Channel, e: BaseException) -> None:
    if isinstance(e, MiniBoxError):
        msg = {"t": "error", "error": e.to_dict(), "tail": bool(getattr(e, "want_tail", False))}
    else:
        msg = {"t": "error", "tail": False,
               "error": {"kind": "internal", "message": f"the build sandbox failed: "
                                                        f"{type(e).__name__}: {e}",
                         "hint": traceback.format_exc(limit=8)}}
    try:
        chan.send(msg)
    except OSError:
        pass


def _kill_step() -> None:
    """Kill the running step's PID 1 (its PID namespace dies with it) and reap it.  Only
    while it is still our unreaped child: a PID already reaped may belong to anyone now."""
    pid = process.current_child
    if not pid:
        return
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _own_signals() -> None:
    """Drop whatever handlers the worker (Celery, pytest) installed; SIGTERM cancels."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, cancel.on_signal)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

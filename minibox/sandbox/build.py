"""``run_block``: the worker-side entry point of the build sandbox.

It has this process's small zygote run the sandbox (see supervisor.py; zygote.py: the
zygote enters the block's namespaces itself and goes back after it), or forks one from this
process when there is none; streams RUN output to ``on_output`` and progress to
``on_event``, polls ``should_cancel`` about every 100 ms, and always waits until the sandbox
is over (the zygote back home, or the forked one reaped).  The calling process (a Celery
prefork worker) comes out unchanged: every namespace, mount and signal change happens in
the zygote or in the forked child.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
from typing import Callable

from minibox.errors import BuildFailed, Cancelled, MiniBoxError
from minibox.rmtree import remove_tree
from minibox.sandbox import process, supervisor
from minibox.sandbox.spec import BlockOutcome, SandboxSpec, StepTiming

TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_CANCEL_POLL = 0.1
_READ = 65536


class _Tail:
    """The last bytes of the current step's output (bounded)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def reset(self) -> None:
        self.buf.clear()

    def feed(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 2 * _TAIL_BYTES:
            del self.buf[:-_TAIL_BYTES]

    def lines(self) -> list[str]:
        text = bytes(self.buf[-_TAIL_BYTES:]).decode("utf-8", "replace")
        return [ln[:1000] for ln in text.splitlines()[-TAIL_LINES:]]


def run_block(spec: SandboxSpec | dict, on_output: Callable[[bytes], None],
              on_event: Callable[[dict], None],
              should_cancel: Callable[[], bool] | None = None) -> BlockOutcome:
    """Run the steps of one build block in a fresh sandbox; changes land in ``upper_dir``.

    Raises BuildFailed (a step failed; ``.tail`` holds the last output lines of a failed
    process), UserError (a bad COPY source or spec), KernelError, or Cancelled.
    """
    if isinstance(spec, dict):
        spec = SandboxSpec.from_dict(spec)
    spec.validate()
    t0 = time.monotonic()
    with _network(spec) as net, _sigchld_default():
        netns_fd = net.fd if net is not None else None
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
        try:
            child = _start(spec, out_w, ctl_w, netns_fd)
        except BaseException:
            for fd in (out_r, ctl_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(ctl_w)
        session = _Session(child, out_r, ctl_r, on_output, on_event, should_cancel)
        try:
            session.pump()
        finally:
            session.close()
            _cleanup_scratch(spec)
            if net is not None:
                net.reusable = session.ended_in_order()
    return session.outcome(time.monotonic() - t0, t0)


def _start(spec: SandboxSpec, out_w: int, ctl_w: int, netns_fd: int | None):
    """The sandbox, run by this process's zygote (zygote.py), or forked by this process
    when there is none (MINIBOX_NO_ZYGOTE, or it cannot start)."""
    if not os.environ.get("MINIBOX_NO_ZYGOTE"):
        from minibox.sandbox import zygote      # (not at import: `python -m` runs it)

        fds = [out_w, ctl_w] + ([netns_fd] if netns_fd is not None else [])
        spawned = zygote.handle().spawn(spec.to_dict(), fds)
        if spawned is not None:
            return spawned
    process.prepare()                   # the seccomp filter, compiled once per worker
    worker = os.getpid()
    pid = os.fork()
    if pid == 0:
        supervisor.sandbox_main(spec, supervisor.Pipes(out_w, ctl_w), worker, netns_fd)
    return _Forked(pid)


class _Forked:
    """A sandbox forked by this process."""

    def __init__(self, pid: int):
        self.pid = pid

    def signal(self, sig: int) -> None:
        _signal(self.pid, sig)

    def reap(self) -> int:
        return _reap(self.pid)


@contextlib.contextmanager
def _network(spec: SandboxSpec):
    """``build``: a prepared namespace on the build network from this worker's pool (given
    back once the sandbox is over: no process of the block is left in it); otherwise
    None."""
    if spec.network != "build":
        yield None
        return
    from minibox.net import buildnet

    pool = buildnet.pool()
    slot = pool.take()
    net = _Net(slot.fd)
    try:
        yield net
    finally:
        pool.give_back(slot, reusable=net.reusable)


class _Net:
    """The block's build-network namespace; ``reusable`` once its sandbox ended in order
    (buildnet then checks it and may hand it to the worker's next block)."""

    def __init__(self, fd: int):
        self.fd, self.reusable = fd, False


class _Session:
    def __init__(self, child, out_r, ctl_r, on_output, on_event, should_cancel):
        self.child, self.out_r, self.ctl_r = child, out_r, ctl_r
        self.on_output, self.on_event, self.should_cancel = on_output, on_event, should_cancel
        self.tail = _Tail()
        self.ctl_buf = b""
        self.open = {out_r, ctl_r}
        self.poller = select.poll()
        self.steps: list[StepTiming] = []
        self.ready_at: float | None = None
        self.error: dict | None = None
        self.done = self.cancelled = self.reaped = False
        self.status = 0
        self.line = 0

    # --- reading -------------------------------------------------------------------------
    def pump(self) -> None:
        for fd in (self.out_r, self.ctl_r):
            os.set_blocking(fd, False)
            self.poller.register(fd, select.POLLIN)
        next_check = time.monotonic() + _CANCEL_POLL
        while self.ctl_r in self.open:
            for fd, _ in self.poller.poll(_CANCEL_POLL * 1000):
                self._read(fd)
            if self.should_cancel is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + _CANCEL_POLL
                if self.should_cancel():
                    self.cancelled = True
                    return
        deadline = time.monotonic() + 5               # strays are dying: take their output
        while self.out_r in self.open and time.monotonic() < deadline:
            for fd, _ in self.poller.poll(100):
                self._read(fd)

    def _read(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                return
            if not data:
                self.poller.unregister(fd)
                self.open.discard(fd)
                return
            if fd == self.out_r:
                self.tail.feed(data)
                self.on_output(data)
            else:
                self._control(data)

    def _control(self, data: bytes) -> None:
        self.ctl_buf += data
        *lines, self.ctl_buf = self.ctl_buf.split(b"\n")
        for raw in lines:
            if self.out_r in self.open:               # output written before this message
                self._read(self.out_r)
            self._message(_parse(raw))

    def _message(self, msg: dict) -> None:
        kind = msg.get("t")
        if kind == "event":
            ev = msg["event"]
            if ev.get("type") == "step":
                self.tail.reset()
                self.line = ev.get("line", 0)
            self.on_event(ev)
        elif kind == "ready":
            self.ready_at = time.monotonic()
        elif kind == "step_done":
            self.steps.append(StepTiming(msg["line"], msg["op"], msg["seconds"]))
        elif kind == "error":
            self.error = msg
        elif kind == "done":
            self.done = True

    # --- ending ----------------------------------------------------------------------------
    def close(self) -> None:
        try:
            if not self.reaped:
                if not self.done and self.error is None:
                    self.child.signal(signal.SIGTERM)     # the sandbox kills its step, ends
                self.status = self.child.reap()
                self.reaped = True
        finally:
            for fd in (self.out_r, self.ctl_r):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def ended_in_order(self) -> bool:
        """The sandbox ended by itself, reaped: done, or a failure it reported (not
        cancelled, killed or dead)."""
        return (self.reaped and not self.cancelled and (self.done or self.error is not None)
                and os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) in (0, 1))

    def outcome(self, duration: float, t0: float) -> BlockOutcome:
        if self.cancelled:
            raise Cancelled(f"build block cancelled (at line {self.line})")
        if self.error is not None:
            err = MiniBoxError.from_dict(self.error["error"])
            if self.error.get("tail"):
                err.tail = self.tail.lines()
                if err.tail:
                    text = "last output:\n" + "\n".join("    " + ln for ln in err.tail)
                    err.hint = f"{err.hint}\n{text}" if err.hint else text
            raise err
        if not self.done:
            raise BuildFailed(f"the build sandbox died unexpectedly ({_describe(self.status)})",
                              hint="the worker may be short of memory or processes")
        setup = (self.ready_at - t0) if self.ready_at else 0.0
        return BlockOutcome(duration=duration, setup_seconds=setup, steps=self.steps)


def _parse(raw: bytes) -> dict:
    try:
        return json.loads(raw)
    except ValueError:
        return {"t": "garbage", "raw": raw[:200].decode("utf-8", "replace")}


def _reap(pid: int) -> int:
    """Wait for the sandbox; SIGKILL it if it does not exit within 10 s (its step dies too)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return os.waitpid(pid, 0)[1]
    try:
        if not select.select([pidfd], [], [], 10)[0]:
            _signal(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


@contextlib.contextmanager
def _sigchld_default():
    """waitpid needs SIGCHLD not ignored; restore the worker's setting afterwards."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            yield
        finally:
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    else:
        yield


def _cleanup_scratch(spec: SandboxSpec) -> None:
    """Remove the sandbox's mount point in scratch (its contents were a tmpfs in the
    sandbox's own mount namespace, gone with it)."""
    base = os.path.join(spec.scratch_dir, "sandbox")
    try:
        os.rmdir(base)
    except FileNotFoundError:
        pass
    except OSError:
        if not os.path.ismount(base):
            remove_tree(base, ignore_errors=True)

"""The per-container monitor: a small process that outlives the worker and the daemon.

Forked from the runtime worker (after gc.freeze, so the shared pages stay shared),
double-forked and setsid'd so it is nobody's child.  It clones the container's init into
new namespaces, puts it in its cgroup while the init builds its rootfs, reports
``S <pid> <starttime>`` (or ``E <code> <message>``) to the worker, then:
- copies the container's stdout/stderr (pipes, or the PTY master with -t) into the log;
- with -t or -i, serves ``attach.sock`` in the container dir (frames: b'd'+len+data for
  input to the PTY or the stdin pipe, b'r'+len+"rows cols" for a resize, b'c' closes the
  stdin pipe: the container's EOF; with a PTY the output goes to the clients raw);
  with -t the PTY comes from the container's own devpts: its init opens it and passes the
  master back over a socketpair (SCM_RIGHTS), as runc does with its console socket;
- watches the report socket, which stays open as the "ack" channel: the worker sends
  ``ACK`` (one byte) once state.json records the start, then closes it.  EOF without that
  byte means the start was never recorded (the worker died, or failed to write the state):
  the container is killed (SIGKILL to its init: its PID namespace goes with it) and its exit
  record says 137 with an ``error``, so no container runs that its record calls "created".
  There is no timeout while the container runs (a slow worker never gets its container
  killed); once it has exited, the exit is recorded after the ack or ACK_WAIT_S at most;
- reaps the init, and writes ``exit.json`` (code, OOMKilled) atomically;
- removes the cgroup, and with --rm its anonymous volumes (before the exit record, so a
  `run --rm` that returns has left none; only dirs DataRoot/volumes/<64 hex> whose
  volume.json says anonymous and made for this container, that no other container uses),
  then the container dir (keeping a tombstone of the exit).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from pathlib import Path

from minibox import kernel as k
from minibox.runtime.limits import cgroups
from minibox.runtime.start import init, rootfs
from minibox.runtime.io import logs
from minibox.runtime.start.monitor_attach import AttachServer
from minibox.atomic import write_json
from minibox.runtime.state import StateStore, proc_start_time
from minibox.wire.runtime import StartPlan

ACK = b"k"          # what the worker sends once the start is recorded (spawn.ACK)
# Once the container has exited, how long to wait for the worker's ack before recording the
# exit anyway.  Generous: the worker only has to write state.json (milliseconds), but a
# worker that is merely slow (a stalled disk, a paused process) must still find an exit
# record that matches what it writes; nothing is killed when it runs out.
ACK_WAIT_S = 120.0
UNRECORDED = ("the start was never recorded (the runtime worker died or failed before "
              "writing the container's state)")


def main(plan: StartPlan, report_w: int, tini_fd: int) -> None:
    """Entry point in the (already setsid'd) monitor process.  Never returns."""
    try:
        # it came over SCM_RIGHTS without close-on-exec: the init must not pass it to tini
        os.set_inheritable(report_w, False)
        _prepare_process(plan, keep=(report_w, tini_fd))
        mon = Monitor(plan)
        pid = mon.spawn(report_w, tini_fd)
        if pid:
            mon.serve()
            mon.finish()
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(report_w, f"E 1 monitor failed: {type(e).__name__}: {e}\n".encode())
        except OSError:
            pass
        _crash_note(plan)
    os._exit(0)


def _crash_note(plan: StartPlan) -> None:
    """Leave the traceback in the container dir (monitor.err) for `inspect` and humans."""
    import traceback
    try:
        with open(os.path.join(plan.dir, "monitor.err"), "a") as f:
            traceback.print_exc(file=f)
    except OSError:
        pass


def _prepare_process(plan: StartPlan, keep: tuple[int, ...]) -> None:
    lo = 3
    for fd in sorted(k for k in keep if k >= 3) + [1 << 20]:
        os.closerange(lo, fd)       # everything the worker had open, except what we keep
        lo = fd + 1
    null = os.open("/dev/null", os.O_RDWR)
    for i in range(3):
        os.dup2(null, i)
    os.close(null)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    k.set_process_name("minibox-mon")
    os.chdir(plan.dir)


class Monitor(AttachServer):
    def __init__(self, plan: StartPlan):
        self.plan = plan
        self.pid = 0
        self.streams: dict[int, str] = {}
        self.master = -1
        self.stdin_w = -1          # -i without -t: the write end of the container's stdin
        self.pending = b""         # input not yet taken by the PTY / stdin pipe
        self.stdin_eof = False
        self.console_sock = None   # -t: where the init sends the PTY master
        self.listener = None
        self.clients: dict[int, socket.socket] = {}
        self.status = None
        self.ack_fd = -1
        self.unrecorded = False    # the ack socket closed without ACK: see _read_ack

    # --- start ------------------------------------------------------------------------
    def spawn(self, report_w: int, tini_fd: int) -> int:
        plan = self.plan
        stdio, child_fds = self._stdio()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = k.clone_process(rootfs.clone_flags(plan))
        if pid == 0:
            os.close(err_r)
            os.close(go_w)
            if self.console_sock is not None:
                self.console_sock.close()
            init.child_main(plan, stdio, err_w, go_r, tini_fd)
        self.pid = pid
        # now, while it waits for us: once it has exec'd, a fast command (`true`) may be a
        # zombie already, and a zombie has no start time to read
        pid_start = proc_start_time(pid)
        for fd in child_fds + [err_w, go_r, tini_fd]:
            os.close(fd)
        try:
            cgroups.attach(plan.cgroup_dirs, pid)
        except OSError as e:
            # killed before it goes on; an init that failed on its own has said why
            os.kill(pid, signal.SIGKILL)
            os.close(go_w)
            why = _read_all(err_r) or f"1 cannot join the container's cgroup: {e}".encode()
            self._fail(report_w, pid, why.decode("utf-8", "replace"))
            return 0
        try:
            os.write(go_w, b"g")
        except OSError:
            pass                    # it is gone already: its error pipe says why
        finally:
            os.close(go_w)
        msg = _read_all(err_r) or self._take_master()
        if msg:
            self._fail(report_w, pid, msg.decode("utf-8", "replace"))
            return 0
        if plan.tty or plan.interactive:
            # before the report: a client may connect as soon as the start is recorded
            self._listen()
        me = os.getpid()
        try:
            os.write(report_w, f"S {pid} {pid_start} {me} {proc_start_time(me)}\n".encode())
        except OSError:            # the worker is gone (or gave up waiting): nobody records it
            self._fail(report_w, pid, "")
            return 0
        self.ack_fd = report_w     # the worker sends ACK and closes it once the start is recorded
        return pid

    def _fail(self, report_w: int, pid: int, msg: str) -> None:
        if self.console_sock is not None:
            self.console_sock.close()
        os.kill(pid, signal.SIGKILL)      # a no-op for an init that already exited
        os.waitpid(pid, 0)
        cgroups.remove(self.plan.cgroup_dirs)
        try:
            if msg:
                os.write(report_w, f"E {msg}\n".encode("utf-8", "replace"))
        finally:
            os.close(report_w)

    def _stdio(self):
        """(what the init gets as stdio, the fds to close here once it is cloned).  With -t
        that is one end of a socketpair: the init makes its PTY and sends the master back."""
        if self.plan.tty:
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self.console_sock = mine
            fd = theirs.detach()
            return fd, [fd]
        if self.plan.interactive:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            self.stdin_w = in_w
        else:
            in_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.streams = {out_r: "o", err_r: "e"}
        return (in_r, out_w, err_w), [in_r, out_w, err_w]

    def _take_master(self) -> bytes:
        """-t: receive the PTY master the init sent before its exec; b'' or an error message."""
        if self.console_sock is None:
            return b""
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(self.console_sock, 16, 1)
        except OSError as e:
            return f"1 cannot receive the container's terminal: {e}".encode()
        finally:
            self.console_sock.close()
            self.console_sock = None
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return b"1 the container's init did not pass its terminal"
        self.master = fds[0]
        os.set_blocking(self.master, False)
        self.streams[self.master] = "o"
        return b""
    # --- running ----------------------------------------------------------------------
    def _input_fd(self) -> int:
        return self.master if self.master >= 0 else self.stdin_w

    def serve(self) -> None:
        self.log = logs.LogWriter(self.plan.dir, self.plan.log_max_size)
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        if self._input_fd() >= 0:
            os.set_blocking(self._input_fd(), False)
        if self.ack_fd >= 0:
            os.set_blocking(self.ack_fd, False)
        deadline = None
        while self.streams or self.status is None:
            timeout = None if deadline is None else max(0, deadline - time.monotonic()) * 1000
            for fd, ev in self._poller(wake_r).poll(timeout):
                self._dispatch(fd, ev, wake_r)
            if self.status is None:
                self._reap()
                if self.status is not None:
                    deadline = time.monotonic() + 2.0
                    self._close_stdin()
            elif deadline is not None and time.monotonic() >= deadline:
                break   # something outside the namespace keeps a pipe open: stop waiting

    def _poller(self, wake_r: int):
        """What to wait for now: while input is pending, its fd (writable) instead of the
        clients, so a container that does not read its input slows the sender down (the
        socket fills) but its output keeps flowing."""
        want = dict.fromkeys([wake_r, *self.streams], select.POLLIN)
        if self.ack_fd >= 0:
            want[self.ack_fd] = select.POLLIN
        if self.listener is not None:
            want[self.listener.fileno()] = select.POLLIN
        if self.pending:     # with a PTY the same fd as the output: one registration, both
            fd = self._input_fd()
            want[fd] = want.get(fd, 0) | select.POLLOUT
        else:
            want.update(dict.fromkeys(self.clients, select.POLLIN))
        poller = select.poll()
        for fd, events in want.items():
            poller.register(fd, events)
        return poller

    def _dispatch(self, fd: int, ev: int, wake_r: int) -> None:
        if fd == wake_r:
            _drain(wake_r)
        if fd == self.ack_fd:
            self._read_ack()
        if fd in self.streams and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            self._pump(fd)
        if self.pending and fd == self._input_fd() and ev & ~select.POLLIN:
            self._flush_input()
        if self.listener is not None and fd == self.listener.fileno():
            self._accept()
        elif fd in self.clients and not self.pending:
            self._client_input(fd)

    def _pump(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""          # EIO: the PTY's last slave is closed
        if not data:
            os.close(fd)
            del self.streams[fd]
            if fd == self.master:
                self.master = -1
                self.pending = b""
            return
        self.log.write(self.streams[fd], data)
        if fd == self.master:
            # best effort, never blocking: the log has all of it, and a client that does
            # not read (the daemon's input connection) must not stall the container
            for c in list(self.clients.values()):
                try:
                    c.send(data, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
                except OSError:
                    self._drop_client(c.fileno())

    def _read_ack(self) -> None:
        """The worker's verdict on the ack socket (non-blocking): ACK, then EOF: the start is
        recorded.  EOF alone: it never will be, so the container must not run on: SIGKILL
        to its init (still our unreaped child, so never a reused pid)."""
        try:
            data = os.read(self.ack_fd, 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data and ACK not in data:
            return                 # not the byte: keep waiting for it (or the EOF)
        os.close(self.ack_fd)
        self.ack_fd = -1
        if not data:
            self.unrecorded = True
            if self.status is None:
                os.kill(self.pid, signal.SIGKILL)

    def _await_ack(self, timeout: float) -> None:
        """After the exit: wait for the worker's verdict, ``timeout`` at most (then the exit
        is recorded anyway: a slow worker's state will match it when it comes)."""
        end = time.monotonic() + timeout
        while self.ack_fd >= 0:
            left = end - time.monotonic()
            ready = select.select([self.ack_fd], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                os.close(self.ack_fd)
                self.ack_fd = -1
                return
            self._read_ack()

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.status = 255 << 8
            return
        if pid:
            self.status = status

    # --- exit -------------------------------------------------------------------------
    def finish(self) -> None:
        plan = self.plan
        if self.ack_fd >= 0:
            os.set_blocking(self.ack_fd, False)
            self._await_ack(ACK_WAIT_S)
        st = self.status if self.status is not None else 255 << 8
        code = os.waitstatus_to_exitcode(st)
        code = 128 - code if code < 0 else code
        cg = cgroups.Cgroup(plan.cgroup_version, plan.cgroup_dirs)
        exit_rec = {"run": plan.run, "exit_code": code, "oom_killed": cgroups.oom_killed(cg),
                    "finished_at": time.time()}
        if self.unrecorded:
            exit_rec["error"] = UNRECORDED
        self.log.close()
        for c in self.clients.values():
            c.close()
        if self.listener is not None:
            self.listener.close()
            _unlink("attach.sock")
        if plan.autoremove:
            # before the exit record: `run --rm` returns once it is there (Docker's CLI,
            # too, returns after the removal)
            from minibox.runtime.volumes import remove_anonymous
            remove_anonymous(plan.data_root, plan.id, plan.anonymous_volumes)
        # the exit record first (what waiters wait for), then the slower cleanup; not
        # fsync'd: after a power loss the container is gone anyway (state says "unknown")
        write_json(Path(plan.dir) / "exit.json", exit_rec, durable=False)
        cgroups.remove(plan.cgroup_dirs)
        if plan.autoremove:
            store = StateStore(plan.data_root)
            store.write_tomb(plan.id, exit_rec)
            store.release_name(plan.name, plan.id)
            os.chdir("/")
            store.remove_dir(plan.id)


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            os.close(fd)
            return out
        out += chunk


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except OSError:
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

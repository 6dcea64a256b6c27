"""The per-container monitor: a small process that outlives the worker and the daemon.

Forked from the runtime worker (after gc.freeze, so the shared pages stay shared),
double-forked and setsid'd so it is nobody's child.  It clones the container's init into
new namespaces, puts it in its cgroup while the init builds its rootfs, reports
``S <pid> <starttime>`` (or ``E <code> <message>``) to the worker, then:
- copies the container's stdout/stderr (pipes, or the PTY master with -t) into the log;
- with -t, serves the PTY on ``attach.sock`` in the container dir (frames: b'd'+len+data
  for input, b'r'+len+"rows cols" for a resize; output is the raw PTY stream);
- reaps the init, and writes ``exit.json`` (code, OOMKilled) atomically;
- removes the cgroup, and with --rm the container dir (keeping a tombstone of the exit).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import time
from pathlib import Path

from minibox import kernel as k
from minibox.runtime import cgroups, init, logs
from minibox.runtime.state import StateStore, proc_start_time, write_json

NS_FLAGS = k.CLONE_NEWNS | k.CLONE_NEWPID | k.CLONE_NEWUTS | k.CLONE_NEWIPC


def main(plan: dict, report_w: int, tini_fd: int) -> None:
    """Entry point in the (already setsid'd) monitor process.  Never returns."""
    try:
        _prepare_process(plan, keep=(report_w, tini_fd))
        mon = Monitor(plan)
        pid = mon.spawn(report_w, tini_fd)
        if pid and plan.get("minimon"):
            mon.exec_minimon()
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


def _crash_note(plan: dict) -> None:
    """Leave the traceback in the container dir (monitor.err) for `inspect` and humans."""
    import traceback
    try:
        with open(os.path.join(plan["dir"], "monitor.err"), "a") as f:
            traceback.print_exc(file=f)
    except OSError:
        pass


def _prepare_process(plan: dict, keep: tuple[int, ...]) -> None:
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
    os.chdir(plan["dir"])


class Monitor:
    def __init__(self, plan: dict):
        self.plan = plan
        self.pid = 0
        self.streams: dict[int, str] = {}
        self.master = -1
        self.listener = None
        self.clients: dict[int, socket.socket] = {}
        self.status = None
        self.ack_fd = -1

    # --- start ------------------------------------------------------------------------
    def spawn(self, report_w: int, tini_fd: int) -> int:
        plan = self.plan
        stdio, child_fds = self._stdio()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        flags = NS_FLAGS | (0 if plan["network"] == "host" else k.CLONE_NEWNET)
        pid = k.clone_process(flags)
        if pid == 0:
            os.close(err_r)
            os.close(go_w)
            init.child_main(plan, stdio, err_w, go_r, tini_fd)
        self.pid = pid
        # now, while it waits for us: once it has exec'd, a fast command (`true`) may be a
        # zombie already, and a zombie has no start time to read
        pid_start = proc_start_time(pid)
        for fd in child_fds + [err_w, go_r, tini_fd]:
            os.close(fd)
        try:
            cgroups.attach(plan["cgroup_dirs"], pid)
            os.write(go_w, b"g")
        except OSError as e:
            os.kill(pid, signal.SIGKILL)
            self._fail(report_w, pid, f"1 cannot join the container's cgroup: {e}")
            return 0
        finally:
            os.close(go_w)
        msg = _read_all(err_r)
        if msg:
            self._fail(report_w, pid, msg.decode("utf-8", "replace"))
            return 0
        me = os.getpid()
        os.write(report_w, f"S {pid} {pid_start} {me} {proc_start_time(me)}\n".encode())
        self.ack_fd = report_w     # the worker closes its end once the start is recorded
        return pid

    def _fail(self, report_w: int, pid: int, msg: str) -> None:
        os.waitpid(pid, 0)
        cgroups.remove(self.plan["cgroup_dirs"])
        os.write(report_w, f"E {msg}\n".encode("utf-8", "replace"))
        os.close(report_w)

    def _stdio(self):
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        if self.plan.get("tty"):
            master, slave = os.openpty()
            os.set_inheritable(master, False)
            os.set_blocking(master, False)
            self.master = master
            self.streams[master] = "o"
            self.plan["console"] = os.ttyname(slave)
            _set_winsize(master, 24, 80)
            return (slave, slave, slave), [slave, null]
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.streams = {out_r: "o", err_r: "e"}
        return (null, out_w, err_w), [null, out_w, err_w]

    # --- running ----------------------------------------------------------------------
    def exec_minimon(self) -> None:
        """Become the compiled monitor (same pid, still the init's parent); returns only if
        the exec failed, and then this Python monitor carries on."""
        plan = self.plan
        fds = {"o": -1, "e": -1}
        for fd, stream in self.streams.items():
            fds[stream] = fd
        listen = -1
        if self.master >= 0:
            self._listen(None)
            listen = self.listener.fileno()
        for fd in [f for f in fds.values() if f >= 0] + ([listen] if listen >= 0 else []):
            os.set_inheritable(fd, True)
            os.set_blocking(fd, True)
        argv = [plan["minimon"], plan["dir"], plan["data_root"], plan["id"],
                plan.get("name") or "", str(plan["run"]), str(self.pid),
                "1" if plan.get("autoremove") else "0",
                str(plan.get("log_max_size", logs.DEFAULT_MAX_SIZE)),
                str(fds["o"]), str(fds["e"]), str(listen), str(self.ack_fd)] + list(plan["cgroup_dirs"])
        os.set_inheritable(self.ack_fd, True)
        try:
            os.execv(plan["minimon"], argv)
        except OSError:
            pass

    def serve(self) -> None:
        self.log = logs.LogWriter(self.plan["dir"], self.plan.get("log_max_size", logs.DEFAULT_MAX_SIZE))
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        for fd in self.streams:
            poller.register(fd, select.POLLIN)
        if self.master >= 0:
            self._listen(poller)
        deadline = None
        while self.streams or self.status is None:
            timeout = None if deadline is None else max(0, deadline - time.monotonic()) * 1000
            for fd, _ev in poller.poll(timeout):
                if fd == wake_r:
                    _drain(wake_r)
                elif fd in self.streams:
                    self._pump(fd, poller)
                elif self.listener is not None and fd == self.listener.fileno():
                    self._accept(poller)
                elif fd in self.clients:
                    self._client_input(fd, poller)
            if self.status is None:
                self._reap()
                if self.status is not None:
                    deadline = time.monotonic() + 2.0
            elif deadline is not None and time.monotonic() >= deadline:
                break   # something outside the namespace keeps a pipe open: stop waiting

    def _pump(self, fd: int, poller) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            data = b"" if e.errno == errno.EIO else b""
        if not data:
            poller.unregister(fd)
            os.close(fd)
            del self.streams[fd]
            if fd == self.master:
                self.master = -1
            return
        self.log.write(self.streams[fd], data)
        if fd == self.master:
            for c in list(self.clients.values()):
                try:
                    c.sendall(data)
                except OSError:
                    self._drop_client(c.fileno(), poller)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.status = 255 << 8
            return
        if pid:
            self.status = status

    # --- attach socket (tty) -----------------------------------------------------------
    def _listen(self, poller) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            os.unlink("attach.sock")
        except FileNotFoundError:
            pass
        s.bind("attach.sock")          # relative: we run in the container dir
        os.chmod("attach.sock", 0o600)
        s.listen(8)
        self.listener = s
        if poller is not None:
            poller.register(s.fileno(), select.POLLIN)

    def _accept(self, poller) -> None:
        conn, _ = self.listener.accept()
        self.clients[conn.fileno()] = conn
        conn.setblocking(True)
        poller.register(conn.fileno(), select.POLLIN)

    def _client_input(self, fd: int, poller) -> None:
        conn = self.clients[fd]
        try:
            head = _recv_exact(conn, 3)
            kind, size = head[:1], struct.unpack(">H", head[1:])[0]
            body = _recv_exact(conn, size) if size else b""
        except OSError:
            self._drop_client(fd, poller)
            return
        if self.master < 0:
            return
        if kind == b"d":
            _write_all(self.master, body)
        elif kind == b"r":
            rows, cols = (int(x) for x in body.split())
            _set_winsize(self.master, rows, cols)

    def _drop_client(self, fd: int, poller) -> None:
        conn = self.clients.pop(fd, None)
        if conn is not None:
            poller.unregister(fd)
            conn.close()

    # --- exit -------------------------------------------------------------------------
    def finish(self) -> None:
        plan = self.plan
        _wait_ack(self.ack_fd)
        st = self.status if self.status is not None else 255 << 8
        code = os.waitstatus_to_exitcode(st)
        code = 128 - code if code < 0 else code
        cg = cgroups.Cgroup(plan["cgroup_version"], plan["cgroup_dirs"])
        exit_rec = {"run": plan["run"], "exit_code": code, "oom_killed": cgroups.oom_killed(cg),
                    "finished_at": time.time()}
        self.log.close()
        for c in self.clients.values():
            c.close()
        if self.listener is not None:
            self.listener.close()
            _unlink("attach.sock")
        # the exit record first (what waiters wait for), then the slower cleanup; not
        # fsync'd: after a power loss the container is gone anyway (state says "unknown")
        write_json(Path(plan["dir"]) / "exit.json", exit_rec, sync=False)
        cgroups.remove(plan["cgroup_dirs"])
        if plan.get("autoremove"):
            store = StateStore(plan["data_root"])
            store.write_tomb(plan["id"], exit_rec)
            store.release_name(plan.get("name") or "", plan["id"])
            os.chdir("/")
            store.remove_dir(plan["id"])


def _wait_ack(fd: int, timeout: float = 30.0) -> None:
    """Block until the worker has recorded the start (it closes its end of the socket)."""
    if fd < 0:
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


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


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("attach client closed")
        buf += chunk
    return buf


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
            data = data[n:]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

"""The processes an embedded miniboxd brings up and looks after: a private redis-server, the
build worker pool and the runtime worker.  Each is restarted if it dies, and stopped (TERM,
then KILL) when the daemon stops.

One daemon per data root (``run/miniboxd.lock``, held for the daemon's life).  A daemon that
died without stopping them (SIGKILL, OOM) leaves its processes running and listed in
``run/supervisor.json``: the next daemon adopts its Redis (with the job records, queues and
locks in it) and its workers (with the blocks they are running), so nothing is started twice
and nothing is orphaned.  Workers are adopted only together with their broker; when the old
Redis is gone they are ended and started afresh."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

from minibox.config import Settings
from minibox.daemon.procs import Child, read_state, write_state
from minibox.errors import MiniBoxError

log = logging.getLogger("minibox.supervisor")

__all__ = ["Supervisor", "Child"]

REDIS = "redis-server"


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.children: list[Child] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._previous: dict[str, dict] = {}
        self.adopted: list[str] = []

    @property
    def _state_file(self) -> Path:
        return self.settings.run_dir / "supervisor.json"

    # --- one daemon per data root ---------------------------------------------------
    def lock(self) -> None:
        """Take the data root's daemon lock, or say which daemon holds it."""
        run = self.settings.run_dir
        run.mkdir(parents=True, exist_ok=True)
        path = run / "miniboxd.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise MiniBoxError(f"another miniboxd (pid {holder}) is running on the data root "
                               f"{self.settings.data_root}",
                               hint="stop it first, or give this one its own "
                                    "MINIBOX_DATA_ROOT") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        self._previous = read_state(self._state_file)

    def _adopt(self, child: Child) -> bool:
        prev = self._previous.pop(child.name, None)
        if prev and child.adopt(prev["pid"], prev.get("started")):
            self.adopted.append(child.name)
            return True
        return False

    def end_leftovers(self) -> None:
        """End what the previous daemon ran that was not adopted (its process groups)."""
        for name, prev in self._previous.items():
            c = Child(name, [], {}, Path("/dev/null"))
            if c.adopt(prev["pid"], prev.get("started")):
                log.warning("ending %s (pid %d) left by the previous daemon", name, c.pid)
                c.signal(15, group=True)
                if not c._wait(10.0):
                    c.signal(9, group=True)
        self._previous = {}

    def _save(self) -> None:
        write_state(self._state_file, self.children)

    # --- redis ------------------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise MiniBoxError("redis-server is not installed",
                               hint="apt-get install redis-server, or set MINIBOX_BROKER_URL")
        run = self.settings.run_dir
        sock = self.settings.redis_socket
        argv = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(run),
                "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"]
        child = Child(REDIS, argv, dict(os.environ), run / "redis.log")
        self.children.append(child)
        if self._adopt(child):
            try:
                _wait_for_socket(sock, child, 5.0)
                self._save()
                return
            except MiniBoxError:
                log.warning("the previous daemon's redis-server does not answer; replacing it")
                child.stop(5.0)
                self.adopted.remove(REDIS)
        # without the old broker, its workers are cut off from their jobs: end them too
        self.end_leftovers()
        sock.unlink(missing_ok=True)
        child.start()
        self._save()
        _wait_for_socket(sock, child, 10.0)

    # --- workers ----------------------------------------------------------------
    def start_workers(self, kinds=("build", "runtime")) -> None:
        env = dict(os.environ)
        env["MINIBOX_DATA_ROOT"] = str(self.settings.data_root)
        env["MINIBOX_BROKER_URL"] = self.settings.effective_broker_url()
        env["MINIBOX_BUILD_CONCURRENCY"] = str(self.settings.build_concurrency)
        for kind in kinds:
            argv = [sys.executable, "-m", "minibox.workers.main", kind]
            child = Child(f"{kind}-worker", argv, env, self.settings.run_dir / f"{kind}.log")
            self.children.append(child)
            if not self._adopt(child):
                child.start()
        self.end_leftovers()
        self._save()

    def watch(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="supervisor")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            for c in self.children:
                if c.stopping or c.alive() or not c.restart:
                    continue
                c.restarts += 1
                log.warning("%s exited with %s; restarting (restart #%d)", c.name,
                            c.returncode, c.restarts)
                time.sleep(min(5.0, 0.2 * c.restarts))
                if self._stop.is_set():
                    return
                c.start()
                self._save()

    def stop(self) -> None:
        self._stop.set()
        for c in reversed(self.children):
            c.stopping = True
        for c in reversed(self.children):
            c.stop()
        if self._lock_fd is not None:
            self._state_file.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None


def _wait_for_socket(path: Path, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise MiniBoxError(f"redis-server exited at start; see {child.logfile}")
        if path.exists():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2.0)
                    s.connect(str(path))
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
        time.sleep(0.02)
    raise MiniBoxError(f"redis-server did not come up in {timeout:.0f}s; see {child.logfile}")

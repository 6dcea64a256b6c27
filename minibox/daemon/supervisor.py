"""The processes an embedded miniboxd brings up and looks after: a private redis-server, the
build worker pool and the runtime worker.  Each is restarted if it dies, and stopped (TERM,
then KILL) when the daemon stops."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from minibox.config import Settings
from minibox.errors import MiniBoxError

log = logging.getLogger("minibox.supervisor")


class Child:
    """One supervised process."""

    def __init__(self, name: str, argv: list[str], env: dict, logfile: Path,
                 restart: bool = True):
        self.name, self.argv, self.env, self.logfile = name, argv, env, logfile
        self.restart = restart
        self.proc: subprocess.Popen | None = None
        self.stopping = False
        self.restarts = 0

    def start(self) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.logfile, "ab", buffering=0)
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        log.info("started %s (pid %d), log %s", self.name, self.proc.pid, self.logfile)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping = True
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.children: list[Child] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- redis ------------------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise MiniBoxError("redis-server is not installed",
                               hint="apt-get install redis-server, or set MINIBOX_BROKER_URL")
        run = self.settings.run_dir
        run.mkdir(parents=True, exist_ok=True)
        sock = self.settings.redis_socket
        sock.unlink(missing_ok=True)
        argv = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(run),
                "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"]
        child = Child("redis-server", argv, dict(os.environ), run / "redis.log")
        child.start()
        self.children.append(child)
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
            child.start()
            self.children.append(child)

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
                            c.proc.returncode if c.proc else "?", c.restarts)
                time.sleep(min(5.0, 0.2 * c.restarts))
                c.start()

    def stop(self) -> None:
        self._stop.set()
        for c in reversed(self.children):
            c.stopping = True
        for c in reversed(self.children):
            c.stop()


def _wait_for_socket(path: Path, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise MiniBoxError(f"redis-server exited at start; see {child.logfile}")
        if path.exists():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(path))
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
        time.sleep(0.02)
    raise MiniBoxError(f"redis-server did not come up in {timeout:.0f}s; see {child.logfile}")

"""Processes the daemon looks after, also across its own death.

A supervised process is known by its pid *and* its start time (``/proc/PID/stat`` field 22),
so a recycled pid is never mistaken for it.  The supervisor writes what it runs to
``run/supervisor.json`` after every start; a daemon that was SIGKILLed leaves that file and
its processes behind, and the next daemon adopts them from it (or ends them) instead of
starting a second Redis or leaving orphans.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from minibox import atomic

log = logging.getLogger("minibox.supervisor")

__all__ = ["Child", "start_time", "read_state", "write_state"]


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone (or a
    zombie: nothing runs there any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


class Child:
    """One supervised process: started here, or adopted from a previous daemon."""

    def __init__(self, name: str, argv: list[str], env: dict, logfile: Path,
                 restart: bool = True):
        self.name, self.argv, self.env, self.logfile = name, argv, env, logfile
        self.restart = restart
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.started: str | None = None
        self.adopted = False
        self.stopping = False
        self.restarts = 0

    def start(self) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.logfile, "ab", buffering=0)
        # its own session: a terminal's ^C reaches the daemon only, which stops it in order
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.pid, self.started, self.adopted = self.proc.pid, start_time(self.proc.pid), False
        log.info("started %s (pid %d), log %s", self.name, self.pid, self.logfile)

    def adopt(self, pid: int, started: str) -> bool:
        """Take over a process a previous daemon started, if it is still that process."""
        if not started or start_time(pid) != started:
            return False
        self.proc, self.pid, self.started, self.adopted = None, pid, started, True
        log.info("adopted %s (pid %d) from the previous daemon", self.name, pid)
        return True

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and start_time(self.pid) == self.started

    @property
    def returncode(self):
        return self.proc.returncode if self.proc is not None else "?"

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping = True
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        if not self._wait(timeout):
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.signal(signal.SIGKILL, group=True)
            self._wait(10.0)

    def signal(self, sig: int, group: bool = False) -> None:
        """Signal the process (or its whole process group: it leads its own session)."""
        if not self.alive():
            return
        try:
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _wait(self, timeout: float) -> bool:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False

    def record(self) -> dict:
        return {"name": self.name, "pid": self.pid, "started": self.started}


def read_state(path: Path) -> dict[str, dict]:
    """What the previous daemon said it runs, by name ({} when nothing usable is there)."""
    try:
        entries = json.loads(path.read_text()).get("children", [])
        return {e["name"]: e for e in entries if isinstance(e.get("pid"), int)}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def write_state(path: Path, children: list[Child]) -> None:
    # not durable: after a power loss none of these processes runs anyway
    atomic.write_json(path, {"daemon": os.getpid(),
                             "children": [c.record() for c in children if c.pid]},
                      durable=False)

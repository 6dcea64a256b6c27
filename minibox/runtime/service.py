"""The runtime worker's face: ``Runtime``, whose verbs are one module each.

    create.py     created                      (a validated spec -> config.json, state.json)
    start.py      created/exited -> running    (plan, monitor, record, ack; restart_exited)
    kill.py       a signal; mark_stopped
    remove.py     -> removing -> gone
    reconcile.py  after a restart of the worker
    exits.py      running -> exited, persisted when a monitor exits

The status and its allowed transitions are in status.py.  Only the runtime worker calls
these (they spawn processes, make cgroups and write state.json).  Reads (ps, inspect, logs,
stats, wait) are in ``query.py`` and run in the daemon.  Every failure on the way to a
started container undoes what was made, so bad input leaves no directory, cgroup, mount or
process behind.  Locks: verbs run in several worker threads at once (``_rw`` shared),
reconcile alone (exclusive); one start/remove of a given container at a time.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from minibox.config import Settings
from minibox.runtime.verbs import create as create_verb
from minibox.runtime.verbs import kill as kill_verb
from minibox.runtime.verbs import reconcile as reconcile_verb
from minibox.runtime.verbs import remove as remove_verb
from minibox.runtime import restart
from minibox.runtime.verbs import start as start_verb
from minibox.runtime.verbs.exits import Exits
from minibox.runtime.network import ContainerNetworks
from minibox.runtime.state import Record, StateStore
from minibox.runtime.volumes import VolumeStore
from minibox.wire.runtime import ContainerSpec, StartPlan

__all__ = ["Runtime"]


class Runtime:
    def __init__(self, data_root):
        self.data_root = Path(data_root)
        self.store = StateStore(self.data_root)
        self.store.ensure()
        self.volumes = VolumeStore(self.data_root)
        self._rw = _RWLock()
        # one start/remove of a given container at a time (striped: no per-id bookkeeping)
        self._cid_locks = [threading.Lock() for _ in range(64)]
        self.net = ContainerNetworks(dataclasses.replace(Settings.from_env(),
                                                         data_root=self.data_root))
        self.exits = Exits(self)

    def _cid_lock(self, cid: str) -> threading.Lock:
        return self._cid_locks[hash(cid) % len(self._cid_locks)]

    # --- the verbs ----------------------------------------------------------------------
    def create(self, request: ContainerSpec | dict) -> str:
        """``request``: a ContainerSpec (validated at the API edge), or a raw request body
        (validated here: callers in this process)."""
        with self._rw.shared():
            return self._create(request)

    def start(self, cid: str) -> dict:
        """A start by the user: it also ends a stop by the user (restart policies apply
        again) and resets the restart counters."""
        with self._rw.shared():
            return self._start(cid, restart.USER_START)

    def run(self, request: ContainerSpec | dict, attach: bool = False) -> dict:
        """create + start; a failed start removes the container again (nothing left).

        ``attach``: the caller will follow the output (a foreground run in one round trip).
        Its log is made before the start and hard-linked as ``.attach/<id>``, which the
        caller opens and unlinks (``open_attach_log``): so it sees all of the output even
        when the container has exited and been removed (--rm) before it looks."""
        with self._rw.shared():
            cid = self._create(request)
            link = None
            try:
                if attach:
                    link = start_verb.attach_link(self, cid)
                st = self._start(cid)
            except BaseException:
                if link:
                    Path(link).unlink(missing_ok=True)
                self._remove(cid, force=True)
                raise
            return {**st, "log_link": link} if link else st

    def restart_exited(self, cid: str, now: float | None = None) -> bool:
        """Restart the container if its restart policy says so now (the periodic loop
        calls this); see start.restart_exited."""
        with self._rw.shared(), self._cid_lock(cid):
            return start_verb.restart_exited(self, cid, now)

    def kill(self, cid: str, sig: int = signal.SIGKILL) -> bool:
        return kill_verb.kill(self, cid, sig)

    def mark_stopped(self, cids: list[str]) -> None:
        """The user stops these containers: their restart policy must not bring them back."""
        with self._rw.shared():
            for cid in cids:
                with self._cid_lock(cid):
                    kill_verb.mark_stopped(self, cid)

    def remove(self, cid: str, force: bool = False, volumes: bool = False) -> None:
        """``volumes``: remove its anonymous volumes too (rm -v); else they stay, dangling."""
        with self._rw.shared():
            return self._remove(cid, force, volumes)

    def reconcile(self) -> dict:
        with self._rw.exclusive():
            return reconcile_verb.reconcile(self)

    # --- for the verbs (under the shared lock) --------------------------------------------
    def _create(self, request: ContainerSpec | dict) -> str:
        return create_verb.create(self, request)

    def _start(self, cid: str, extra: dict | None = None) -> dict:
        with self._cid_lock(cid):
            return start_verb.start_locked(self, cid, extra)

    def _remove(self, cid: str, force: bool = False, volumes: bool = True) -> None:
        # volumes=True by default: a run whose start failed leaves nothing behind
        with self._cid_lock(cid):
            remove_verb.remove_locked(self, cid, force, volumes)

    # seams of the start (tests replace them to cut a start short)
    def _plan(self, rec: Record, spec: ContainerSpec, cg, run: int) -> StartPlan:
        return start_verb.plan(self, rec, spec, cg, run)

    def _record_start(self, rec: Record, started, cg, run: int, spec: ContainerSpec) -> dict:
        return start_verb.record_start(self, rec, started, cg, run, spec)

    def watch_exit(self, cid: str, run: int, started, net: dict | None) -> None:
        self.exits.watch(cid, run, started.pid, started.monitor_pid, net)


class _RWLock:
    """Many holders of ``shared`` at once, or one of ``exclusive`` (writers go first)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def shared(self):
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()



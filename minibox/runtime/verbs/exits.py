"""What the runtime worker does when a container it started exits.

Two watchers (``network.ExitWatcher``, pidfds polled by one thread each):

- the container's init: a container on a network gets its address and rules released at
  once (unless it has been started again meanwhile);
- its monitor, which exits once the exit record is written: the ``running -> exited``
  transition is persisted in state.json (``settle``), so the record says what happened
  without a reader having to work it out.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from minibox.runtime.network import ExitWatcher
from minibox.runtime.state.status import Status, of

if TYPE_CHECKING:
    from minibox.runtime.service import Runtime

__all__ = ["EXIT_FIELDS", "Exits", "settle"]

# what an exit changes in state.json (Record.effective folds the same in from exit.json)
EXIT_FIELDS = ("status", "exit_code", "oom_killed", "finished_at", "pid", "error")


class Exits:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self._lock = threading.Lock()
        self._inits: ExitWatcher | None = None
        self._monitors: ExitWatcher | None = None

    def watch(self, cid: str, run: int, pid: int, monitor_pid: int, net: dict | None) -> None:
        """Watch a running container (its init ``pid``, its monitor ``monitor_pid``)."""
        with self._lock:
            if net and self._inits is None:
                self._inits = ExitWatcher(self._init_exited)
            if self._monitors is None:
                self._monitors = ExitWatcher(self._monitor_exited)
        if net:
            self._inits.watch(cid, pid, net)
        if monitor_pid:
            self._monitors.watch(cid, monitor_pid, {"run": run})

    def _init_exited(self, cid: str, info: dict, pid: int) -> None:
        """Release its address and rules, unless it has been started again meanwhile
        (another pid)."""
        rt = self.rt
        with rt._cid_lock(cid):
            rec = rt.store.load(cid)
            if rec is not None and rec.state.get("pid") not in (pid, 0, None) \
                    and rec.effective()["status"] == "running":
                return
            rt.net.release(cid, info)

    def _monitor_exited(self, cid: str, info: dict, _pid: int) -> None:
        rt = self.rt
        with rt._rw.shared(), rt._cid_lock(cid):
            settle(rt, cid, info.get("run"))


def settle(rt: Runtime, cid: str, run: int | None = None) -> bool:
    """Persist the exit of run ``run`` (any run: None) if state.json still says running and
    the monitor has recorded it (or is gone without a record).  Call it under the
    container's lock.  True if state.json changed."""
    rec = rt.store.load(cid)
    if rec is None or (run is not None and rec.state.get("run") != run):
        return False
    if of(rec.state.get("status")) != Status.RUNNING:
        return False
    st = rec.effective()
    if st["status"] != Status.EXITED.value:
        return False
    rt.store.save_state(cid, {**rec.state, **{k: st[k] for k in EXIT_FIELDS if k in st}},
                        sync=False)
    return True

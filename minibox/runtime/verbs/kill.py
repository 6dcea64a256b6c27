"""The ``kill`` verb: a signal to a running container's init, and ``mark_stopped`` (the
user stops it: its restart policy must leave it stopped).  No transition of its own: the
exit that may follow is the monitor's to record (see exits.py)."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from minibox import kernel
from minibox.errors import MiniBoxError
from minibox.runtime.state import alive

if TYPE_CHECKING:
    from minibox.runtime.service import Runtime

__all__ = ["kill", "mark_stopped"]


def kill(rt: Runtime, cid: str, sig: int = signal.SIGKILL) -> bool:
    """Signal the container's init (through a pidfd: never a reused pid).  False if it is
    not running."""
    rec = rt.store.load(cid)
    if rec is None:            # removed meanwhile (its monitor, for --rm)
        return False
    st = rec.effective()
    if st["status"] != "running":
        return False
    try:
        fd = kernel.pidfd_open(st["pid"])
    except MiniBoxError:
        return False
    try:
        if not alive(st["pid"], st.get("pid_start")):
            return False
        kernel.pidfd_send_signal(fd, sig)
        return True
    except MiniBoxError:
        return False
    finally:
        os.close(fd)


def mark_stopped(rt: Runtime, cid: str) -> None:
    """Before the signal, under the container's lock, so a restart cannot slip in between."""
    rec = rt.store.load(cid)
    if rec is not None and not rec.state.get("stopped_by_user"):
        rt.store.save_state(cid, {**rec.state, "stopped_by_user": True})

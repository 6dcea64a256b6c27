"""The ``remove`` verb: created, exited (or, with force, running) -> removing -> gone.

"removing" is persisted first, so a removal cut short (the worker killed) is finished by
``reconcile``; then the container's cgroup, network, name, directory and (with
``volumes``) its anonymous volumes go.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from minibox.runtime.limits import cgroups
from minibox.runtime import volumes as volume_store
from minibox.runtime.state.status import Status, check, of

if TYPE_CHECKING:
    from minibox.runtime.service import Runtime

__all__ = ["remove_locked"]


def remove_locked(rt: Runtime, cid: str, force: bool = False, volumes: bool = True) -> None:
    rec = rt.store.load(cid, with_config=True)
    if rec is None:
        return
    st = rec.effective()
    current = of(st["status"])
    if current != Status.REMOVING:             # a removal cut short: finish it
        check(rec.name, current, Status.REMOVING, force=force)
    if current == Status.RUNNING:
        rt.kill(cid, signal.SIGKILL)
        from minibox.runtime.query import wait_exited
        wait_exited(rt.store, [cid], 10.0)
    rt.store.save_state(cid, {**rec.state, "status": Status.REMOVING.value}, sync=False)
    cg = cgroups.Cgroup.from_dict(rec.state.get("cgroup"))
    cgroups.remove(cg.dirs)
    rt.net.release(cid, rec.state.get("net"))
    rt.store.release_name(rec.name, cid)
    rt.store.remove_dir(cid)
    anonymous = volume_store.anonymous_of(rec.config.get("mounts"))
    if anonymous:
        rt.volumes.release(anonymous, volumes, rt.store)

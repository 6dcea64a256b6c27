"""The ``reconcile`` verb, at the runtime worker's start (alone: no other verb runs):
persist the exits the monitors recorded while no worker was there, finish removals a
crash cut short, drop the cgroups of what is not running, watch what is, and re-sync the
networks' rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minibox.runtime.limits import cgroups
from minibox.runtime import restart
from minibox.runtime.state.status import Status

if TYPE_CHECKING:
    from minibox.runtime.service import Runtime

__all__ = ["reconcile"]


def reconcile(rt: Runtime) -> dict:
    fixed = 0
    running: dict[str, dict] = {}
    for rec in rt.store.all():
        if rec.state.get("status") == Status.REMOVING.value:
            rt._remove(rec.id, force=True, volumes=False)      # finish it (rm's default)
            fixed += 1
            continue
        st = rec.effective()
        changed = st["status"] != rec.state.get("status")
        if st.get("stopped_by_user") and _always(rt, rec.id):
            st["stopped_by_user"] = False      # Docker: `always` comes back at a restart
            changed = True
        if changed:
            rt.store.save_state(rec.id, st)
            fixed += 1
        if st["status"] != Status.RUNNING.value:
            cgroups.remove(cgroups.Cgroup.from_dict(st.get("cgroup")).dirs, attempts=1)
        else:
            if st.get("net"):
                running[rec.id] = st["net"]
            rt.exits.watch(rec.id, st.get("run"), st["pid"], st.get("monitor_pid") or 0,
                           st.get("net"))
    rt.store.prune_tombs()
    rt.net.resync(running)
    return {"reconciled": fixed}


def _always(rt: Runtime, cid: str) -> bool:
    rec = rt.store.load(cid, with_config=True)
    return rec is not None and restart.policy_of(rec.config)["name"] == "always"

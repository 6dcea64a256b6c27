"""The ``start`` verb: created or exited -> running.

``start_locked`` (under the container's lock) checks the transition, makes the cgroup and
plugs the network, has ``plan`` decide everything into a ``wire.StartPlan``, has the
monitor carry it out (``spawn.start``), records "running" in state.json and only then lets
the monitor go on (the ack).  Whatever fails on the way is undone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from minibox.errors import MiniBoxError
from minibox.runtime.security import caps, seccomp
from minibox.runtime.limits import cgroups
from minibox.runtime.start import initlayer, minimon, spawn
from minibox.runtime import restart
from minibox.runtime import volumes as volume_store
from minibox.runtime.state import Record, read_json, sync_later
from minibox.runtime.state.status import Status, check
from minibox.wire.runtime import ContainerSpec, ProcessSpec, StartPlan

if TYPE_CHECKING:
    from minibox.runtime.service import Runtime

__all__ = ["NOFILE_DEFAULT", "attach_link", "plan", "record_start", "restart_exited",
           "start_locked"]

NOFILE_DEFAULT = 1048576


def start_locked(rt: Runtime, cid: str, extra: dict | None = None) -> dict:
    """``extra``: state fields to set with this start (restart counters)."""
    rec = rt.store.load(cid, with_config=True)
    st = rec.effective()
    check(rec.name, st["status"], Status.RUNNING)
    spec = ContainerSpec.from_dict(rec.config["spec"])
    cg = cgroups.create(cid, spec)
    warm = cgroups.prime()     # the attach's RCU grace period passes while we fork
    run = _next_run(rec, st)
    plugged = None
    try:
        plugged = rt.net.plug(cid, spec.network, _port_maps(spec, rec.config),
                              [rec.name, *spec.network_aliases, cid[:12]],
                              {n: [rec.name, *a, cid[:12]]
                               for n, a in spec.extra_networks.items()})
        start_plan = rt._plan(rec, spec, cg, run)
        if plugged is not None:
            start_plan = start_plan.with_netns(plugged.path)
        started = spawn.start(start_plan)
    except BaseException:
        cgroups.remove(cg.dirs)
        rt.net.unplug(cid, plugged)
        raise
    finally:
        warm.done()
    rt.net.handed_over(plugged)
    info = started.net = plugged.info() if plugged is not None else None
    try:
        if extra:
            rec.state = {**rec.state, **extra}
        out = rt._record_start(rec, started, cg, run, spec)
    except BaseException:
        started.abandon()    # not recorded: the monitor kills the container, notes why
        if info:
            rt.net.release(cid, info)
        raise
    started.ack()            # recorded: the monitor may record the exit now
    rt.watch_exit(cid, run, started, info)
    return out


def restart_exited(rt: Runtime, cid: str, now: float | None = None) -> bool:
    """Start it again if its restart policy says so now (under its lock: a stop or rm that
    came first wins).  A start that fails counts as a run that ended at once (back-off)."""
    rec = rt.store.load(cid, with_config=True)
    if rec is None:
        return False
    st = rec.effective()
    if not restart.due(restart.policy_of(rec.config), st, now):
        return False
    counters = restart.next_counters(st)
    try:
        start_locked(rt, cid, counters)
    except (MiniBoxError, OSError) as e:
        rt.store.save_state(cid, {**st, **counters, "finished_at": time.time(),
                                  "error": f"restart failed: {e}"})
        return False
    return True


def record_start(rt: Runtime, rec: Record, started, cg, run: int, spec: ContainerSpec) -> dict:
    """created/exited -> running, in state.json."""
    state = {**rec.state, "status": Status.RUNNING.value, "run": run, "pid": started.pid,
             "net": started.net,
             "pid_start": started.pid_start, "monitor_pid": started.monitor_pid,
             "monitor_start": started.monitor_start, "started_at": time.time(),
             "exit_code": None, "oom_killed": False, "finished_at": None,
             "cgroup": cg.to_dict(), "warnings": cg.warnings + _warnings(spec)}
    state.pop("error", None)
    # atomic now (temp + rename); durable a moment later, off the container's path
    rt.store.save_state(rec.id, state, sync=False)
    d = rt.store.dir(rec.id)
    sync_later([d / "config.json", d / "state.json", d, rt.store.root])
    return state


def plan(rt: Runtime, rec: Record, spec: ContainerSpec, cg, run: int) -> StartPlan:
    """Every decision of this start (the monitor and the init only carry it out)."""
    cfg = rec.config
    names = caps.container_caps(privileged=spec.privileged, add=spec.cap_add,
                                drop=spec.cap_drop, extra=caps.DB_EXTRA if spec.db_mode else ())
    mask = caps.mask_of(names) & caps.engine_mask()
    if not cg.devices_enforced and not spec.privileged:
        mask &= ~(1 << caps.NUMBER["MKNOD"])   # no devices cgroup: no mknod at all
    relax = frozenset(("mount", "umount", "umount2")) if "SYS_ADMIN" in names else frozenset()
    d = str(rec.dir)
    return StartPlan(
        id=rec.id, name=rec.name, run=run, dir=d, data_root=str(rt.data_root),
        # the overlay is mounted in the container's own mount namespace only, so one
        # shared empty directory serves every container as the mount point (older
        # containers have their own)
        rootfs=f"{d}/rootfs" if os.path.isdir(f"{d}/rootfs") else str(rt.store.mnt),
        upper=f"{d}/upper", work=f"{d}/work",
        etc_files=cfg.get("etc_files"),
        lowers=_with_init_layer(rt.data_root, cfg["image"]["layers"]),
        mounts=cfg["mounts"],
        hostname=cfg["hostname"], network=spec.network, shm_size=spec.shm_size,
        tty=spec.tty, interactive=spec.interactive,
        sysctls=spec.sysctls, process=ProcessSpec.from_wire(cfg["process"]),
        caps_mask=mask, privileged=spec.privileged,
        no_new_privs=spec.no_new_privileges and not spec.privileged,
        seccomp=seccomp.compile_filter(relax) if spec.seccomp and not spec.privileged else None,
        cgroup_dirs=cg.dirs, cgroup_version=cg.version,
        oom_score_adj=spec.oom_score_adj, autoremove=spec.autoremove,
        log_max_size=spec.log_max_size, log_max_files=spec.log_max_files,
        rlimits={"RLIMIT_NOFILE": (NOFILE_DEFAULT, NOFILE_DEFAULT)},
        minimon=minimon.path(rt.data_root),
        # --rm: the monitor deletes these volume dirs (DataRoot/volumes/<name>) once the
        # container has exited, before its exit record, as Docker does; it checks each
        # one (under DataRoot/volumes, anonymous, made for this container, unused)
        anonymous_volumes=[str(rt.volumes.root / n)
                           for n in volume_store.anonymous_of(cfg["mounts"])]
        if spec.autoremove else [],
    )


def _warnings(spec: ContainerSpec) -> list[str]:
    out = []
    if spec.oom_score_adj < 0 and not caps.engine_mask() & (1 << caps.NUMBER["SYS_RESOURCE"]):
        out.append("oom_score_adj below 0 needs CAP_SYS_RESOURCE, which the engine lacks: "
                   "left unchanged")
    return out


def attach_link(rt: Runtime, cid: str) -> str:
    """The log, made before the start and hard-linked as ``.attach/<id>`` (see Runtime.run)."""
    from minibox.runtime.io.logs import LOG
    log = rt.store.dir(cid) / LOG
    os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
    link = str(rt.store.attach / cid)
    Path(link).unlink(missing_ok=True)
    os.link(log, link)
    return link


def _port_maps(spec: ContainerSpec, config: dict) -> list:
    from minibox.net import ports
    maps = [ports.PortMap.from_dict(d) for d in spec.ports]
    if spec.publish_all:
        mapped = {(m.ctr_port, m.proto) for m in maps}
        maps += [m for m in ports.exposed(config.get("exposed_ports") or [])
                 if (m.ctr_port, m.proto) not in mapped]
    return maps


def _next_run(rec: Record, st: dict) -> int:
    """The run number of a new start: past any exit record too (a start that was never
    recorded -- the worker died before state.json -- left an exit.json for its run, which
    must not match this one)."""
    ex = read_json(rec.dir / "exit.json") or {}
    last = ex.get("run") if isinstance(ex.get("run"), int) else 0
    return max(int(st.get("run") or 0), last) + 1


def _with_init_layer(data_root: Path, layers: list[str]) -> list[str]:
    init = initlayer.for_image(data_root, layers)
    return [init, *layers] if init else list(layers)

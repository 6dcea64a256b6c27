"""The runtime worker's operations: create, start, run, kill, remove, reconcile.

Only the runtime worker calls these (they spawn processes, make cgroups and write
state.json).  Reads (ps, inspect, logs, stats, wait) are in ``query.py`` and run in the
daemon.  Every failure on the way to a started container undoes what was made, so bad input
leaves no directory, cgroup, mount or process behind.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from minibox import kernel
from minibox.hostsfile import hosts_text
from minibox.errors import Conflict, MiniBoxError, UserError
from minibox.runtime import (caps, cgroups, ids, images, initlayer, minimon, process, restart,
                             seccomp, spawn)
from minibox.config import Settings
from minibox.runtime.network import ContainerNetworks, ExitWatcher
from minibox.runtime.spec import from_request
from minibox.runtime.state import Record, StateStore, alive, read_json, sync_later
from minibox.runtime import volumes as volume_store
from minibox.runtime.volumes import VolumeStore
from minibox.wire.runtime import ContainerSpec, ProcessSpec, StartPlan

NOFILE_DEFAULT = 1048576


class Runtime:
    def __init__(self, data_root):
        self.data_root = Path(data_root)
        self.store = StateStore(self.data_root)
        self.store.ensure()
        self.volumes = VolumeStore(self.data_root)
        # operations run in several worker threads at once; reconcile runs alone
        self._rw = _RWLock()
        # one start/remove of a given container at a time (striped: no per-id bookkeeping)
        self._cid_locks = [threading.Lock() for _ in range(64)]
        self.net = ContainerNetworks(dataclasses.replace(Settings.from_env(),
                                                         data_root=self.data_root))
        self._exits: ExitWatcher | None = None
        self._exits_lock = threading.Lock()

    def _cid_lock(self, cid: str) -> threading.Lock:
        return self._cid_locks[hash(cid) % len(self._cid_locks)]

    # --- create -----------------------------------------------------------------------
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

    def restart_exited(self, cid: str, now: float | None = None) -> bool:
        """Restart the container if its restart policy says so now (the periodic loop
        calls this); checked again under the container's lock, so a stop or rm that came
        first wins.  A start that fails counts as a run that ended at once (back-off)."""
        with self._rw.shared(), self._cid_lock(cid):
            rec = self.store.load(cid, with_config=True)
            if rec is None:
                return False
            st = rec.effective()
            if not restart.due(restart.policy_of(rec.config), st, now):
                return False
            counters = restart.next_counters(st)
            try:
                self._start_locked(cid, counters)
            except (MiniBoxError, OSError) as e:
                self.store.save_state(cid, {**st, **counters, "finished_at": time.time(),
                                            "error": f"restart failed: {e}"})
                return False
            return True

    def mark_stopped(self, cids: list[str]) -> None:
        """The user stops these containers: their restart policy must not bring them back
        (before the signal, under each one's lock, so a restart cannot slip in between)."""
        with self._rw.shared():
            for cid in cids:
                with self._cid_lock(cid):
                    rec = self.store.load(cid)
                    if rec is not None and not rec.state.get("stopped_by_user"):
                        self.store.save_state(cid, {**rec.state, "stopped_by_user": True})

    def remove(self, cid: str, force: bool = False, volumes: bool = False) -> None:
        """``volumes``: remove its anonymous volumes too (rm -v); else they stay, dangling."""
        with self._rw.shared():
            return self._remove(cid, force, volumes)

    def reconcile(self) -> dict:
        with self._rw.exclusive():
            return self._reconcile()

    def _create(self, request: ContainerSpec | dict) -> str:
        spec = request if isinstance(request, ContainerSpec) else from_request(request)
        net = None
        if spec.network not in ("none", "host"):
            net = self.net.lookup(spec.network)  # an unknown network: NotFound, nothing made
        image = images.resolve(self.data_root, spec.image)
        argv = process.argv(spec, image)
        uid, gid, groups, home = process.user(spec, image)
        cid = ids.new_id()
        hostname = spec.hostname or (socket.gethostname() if spec.network == "host" else cid[:12])
        if spec.name:
            name = spec.name
            self.store.claim_name(name, cid)     # an atomic symlink: a duplicate is a Conflict
        else:
            name = self._claim_random_name(cid)
        d = self.store.dir(cid)
        mounts: list[dict] = []
        try:
            mounts = self._mounts(spec, image, cid)
            d.mkdir(mode=0o700)
            for sub in ("upper", "work"):
                (d / sub).mkdir(mode=0o755)
            labels = {**(image.config.get("Labels") or {}), **spec.labels}
            config = {
                "spec": spec.to_dict(), "image": {"ref": spec.image, "name": image.name,
                                                   "digest": image.digest, "layers": image.layers},
                "process": {"argv": argv, "env": process.environment(spec, image, hostname, home),
                            "cwd": spec.workdir or image.config.get("WorkingDir") or "/",
                            "uid": uid, "gid": gid, "groups": groups},
                "hostname": hostname, "mounts": mounts, "labels": labels,
                "health": _health(spec, labels),
                "etc_files": _etc_files(hostname, spec.network, net),
                "exposed_ports": sorted(image.config.get("ExposedPorts") or {}),
            }
            # not fsync'd here: start() has config + state + dirs fsync'd (in the background)
            self.store.save_config(cid, config, sync=False)
            self.store.save_state(cid, sync=False, state={"id": cid, "name": name, "status": "created",
                                        "image": spec.image, "image_digest": image.digest,
                                        "command": argv, "created_at": time.time(), "run": 0,
                                        "pid": 0, "exit_code": None, "oom_killed": False})
        except BaseException:
            for vol in volume_store.anonymous_of(mounts):
                self.volumes.discard(vol)
            self.store.release_name(name, cid)
            self.store.remove_dir(cid)
            raise
        return cid

    def _claim_random_name(self, cid: str) -> str:
        # another thread may take the same random name between the pick and the claim; the
        # names in use are listed only after a clash (the claim itself is the check)
        for attempt in range(20):
            name = ids.random_name(self.store.taken_names() if attempt else ())
            try:
                self.store.claim_name(name, cid)
                return name
            except Conflict:
                if attempt == 19:
                    raise
        raise AssertionError("unreachable")

    def _mounts(self, spec: ContainerSpec, image, cid: str) -> list[dict]:
        """The container's mounts: its -v/--tmpfs ones, then an anonymous volume for each
        image VOLUME they do not cover; parents before children.  Volumes are made here
        (anonymous ones for ``cid``) and filled from the image when new; on a failure the
        anonymous ones made are removed again."""
        made: list[str] = []
        try:
            out = [self._mount(m.kind, m.source, m.target, m.readonly, m.options, image, cid,
                               made) for m in spec.mounts]
            taken = {os.path.normpath(m.target) for m in spec.mounts}
            for target in images.image_volumes(image):
                if target not in taken:
                    out.append(self._mount("volume", "", target, False, "", image, cid, made))
        except BaseException:
            for name in made:
                self.volumes.discard(name)
            raise
        return sorted(out, key=lambda m: len(m["target"].rstrip("/").split("/")))

    def _mount(self, kind: str, source: str, target: str, readonly: bool, options: str,
               image, cid: str, made: list[str]) -> dict:
        item = {"kind": kind, "source": source, "target": target, "readonly": readonly,
                "options": options}
        if kind == "bind":
            if not os.path.exists(source):
                raise UserError(f"bind mount source {source} does not exist",
                                hint="create it first; minibox does not create host paths")
            item["host_path"] = os.path.realpath(source)
        elif kind == "volume":
            if not source:
                source = self.volumes.create_anonymous(cid)
                made.append(source)
            item.update(source=source, name=source, anonymous=source in made,
                        host_path=str(self.volumes.ensure(source)))
            self.volumes.copy_up(source, image.layers, target)
        return item

    # --- start ------------------------------------------------------------------------
    def _start(self, cid: str, extra: dict | None = None) -> dict:
        with self._cid_lock(cid):
            return self._start_locked(cid, extra)

    def _start_locked(self, cid: str, extra: dict | None = None) -> dict:
        """``extra``: state fields to set with this start (restart counters)."""
        rec = self.store.load(cid, with_config=True)
        st = rec.effective()
        if st["status"] == "running":
            raise Conflict(f"container {rec.name} is already running")
        spec = ContainerSpec.from_dict(rec.config["spec"])
        cg = cgroups.create(cid, spec)
        warm = cgroups.prime()     # the attach's RCU grace period passes while we fork
        run = _next_run(rec, st)
        plugged = None
        try:
            plugged = self.net.plug(cid, spec.network, _port_maps(spec, rec.config),
                                    [rec.name, *spec.network_aliases, cid[:12]])
            plan = self._plan(rec, spec, cg, run)
            if plugged is not None:
                plan = plan.with_netns(plugged.path)
            started = spawn.start(plan)
        except BaseException:
            cgroups.remove(cg.dirs)
            self.net.unplug(cid, plugged)
            raise
        finally:
            warm.done()
        self.net.handed_over(plugged)
        info = started.net = plugged.info() if plugged is not None else None
        try:
            if extra:
                rec.state = {**rec.state, **extra}
            out = self._record_start(rec, started, cg, run, spec)
        except BaseException:
            started.abandon()    # not recorded: the monitor kills the container, notes why
            if info:
                self.net.release(cid, info)
            raise
        started.ack()            # recorded: the monitor may record the exit now
        if info:
            self._watch_exit(cid, started.pid, info)
        return out

    # --- networks ---------------------------------------------------------------------
    def _watch_exit(self, cid: str, pid: int, info: dict) -> None:
        with self._exits_lock:
            if self._exits is None:
                self._exits = ExitWatcher(self._on_exit)
        self._exits.watch(cid, pid, info)

    def _on_exit(self, cid: str, info: dict, pid: int) -> None:
        """A container on a network exited (its init ``pid``): release its address and
        rules, unless it has been started again meanwhile (another pid)."""
        with self._cid_lock(cid):
            rec = self.store.load(cid)
            if rec is not None and rec.state.get("pid") not in (pid, 0, None) \
                    and rec.effective()["status"] == "running":
                return
            self.net.release(cid, info)

    def _record_start(self, rec: Record, started, cg, run: int, spec: ContainerSpec) -> dict:
        state = {**rec.state, "status": "running", "run": run, "pid": started.pid,
                 "net": started.net,
                 "pid_start": started.pid_start, "monitor_pid": started.monitor_pid,
                 "monitor_start": started.monitor_start, "started_at": time.time(),
                 "exit_code": None, "oom_killed": False, "finished_at": None,
                 "cgroup": cg.to_dict(), "warnings": cg.warnings + self._warnings(spec)}
        state.pop("error", None)
        # atomic now (temp + rename); durable a moment later, off the container's path
        self.store.save_state(rec.id, state, sync=False)
        d = self.store.dir(rec.id)
        sync_later([d / "config.json", d / "state.json", d, self.store.root])
        return state

    def _plan(self, rec: Record, spec: ContainerSpec, cg, run: int) -> StartPlan:
        cfg = rec.config
        names = caps.container_caps(privileged=spec.privileged, add=spec.cap_add,
                                    drop=spec.cap_drop, extra=caps.DB_EXTRA if spec.db_mode else ())
        mask = caps.mask_of(names) & caps.engine_mask()
        if not cg.devices_enforced and not spec.privileged:
            mask &= ~(1 << caps.NUMBER["MKNOD"])   # no devices cgroup: no mknod at all
        relax = frozenset(("mount", "umount", "umount2")) if "SYS_ADMIN" in names else frozenset()
        d = str(rec.dir)
        return StartPlan(
            id=rec.id, name=rec.name, run=run, dir=d, data_root=str(self.data_root),
            # the overlay is mounted in the container's own mount namespace only, so one
            # shared empty directory serves every container as the mount point (older
            # containers have their own)
            rootfs=f"{d}/rootfs" if os.path.isdir(f"{d}/rootfs") else str(self.store.mnt),
            upper=f"{d}/upper", work=f"{d}/work",
            etc_files=cfg.get("etc_files"),
            lowers=_with_init_layer(self.data_root, cfg["image"]["layers"]),
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
            minimon=minimon.path(self.data_root),
            # --rm: the monitor deletes these volume dirs (DataRoot/volumes/<name>) once the
            # container has exited, before its exit record, as Docker does; it checks each
            # one (under DataRoot/volumes, anonymous, made for this container, unused)
            anonymous_volumes=[str(self.volumes.root / n)
                               for n in volume_store.anonymous_of(cfg["mounts"])]
            if spec.autoremove else [],
        )

    @staticmethod
    def _warnings(spec: ContainerSpec) -> list[str]:
        out = []
        if spec.oom_score_adj < 0 and not caps.engine_mask() & (1 << caps.NUMBER["SYS_RESOURCE"]):
            out.append("oom_score_adj below 0 needs CAP_SYS_RESOURCE, which the engine lacks: "
                       "left unchanged")
        return out

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
                    link = self._attach_link(cid)
                st = self._start(cid)
            except BaseException:
                if link:
                    _unlink(link)
                self._remove(cid, force=True)
                raise
            return {**st, "log_link": link} if link else st

    def _attach_link(self, cid: str) -> str:
        from minibox.runtime.logs import LOG
        log = self.store.dir(cid) / LOG
        os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
        link = str(self.store.attach / cid)
        _unlink(link)
        os.link(log, link)
        return link

    # --- signals ----------------------------------------------------------------------
    def kill(self, cid: str, sig: int = signal.SIGKILL) -> bool:
        """Signal the container's init (through a pidfd: never a reused pid)."""
        rec = self.store.load(cid)
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

    # --- remove -----------------------------------------------------------------------
    def _remove(self, cid: str, force: bool = False, volumes: bool = True) -> None:
        # volumes=True by default: a run whose start failed leaves nothing behind
        with self._cid_lock(cid):
            self._remove_locked(cid, force, volumes)

    def _remove_locked(self, cid: str, force: bool = False, volumes: bool = True) -> None:
        rec = self.store.load(cid, with_config=True)
        if rec is None:
            return
        st = rec.effective()
        if st["status"] == "running":
            if not force:
                raise Conflict(f"container {rec.name} is running",
                               hint="stop it first, or use rm -f")
            self.kill(cid, signal.SIGKILL)
            from minibox.runtime.query import wait_exited
            wait_exited(self.store, [cid], 10.0)
        cg = cgroups.Cgroup.from_dict(rec.state.get("cgroup"))
        cgroups.remove(cg.dirs)
        self.net.release(cid, rec.state.get("net"))
        self.store.release_name(rec.name, cid)
        self.store.remove_dir(cid)
        anonymous = volume_store.anonymous_of(rec.config.get("mounts"))
        if anonymous:
            self.volumes.release(anonymous, volumes, self.store)

    # --- restart recovery -------------------------------------------------------------
    def _reconcile(self) -> dict:
        """After a restart: persist exits the monitors recorded meanwhile, drop leftovers."""
        fixed = 0
        running: dict[str, dict] = {}
        for rec in self.store.all():
            st = rec.effective()
            changed = st["status"] != rec.state.get("status")
            if st.get("stopped_by_user") and self._always(rec.id):
                st["stopped_by_user"] = False      # Docker: `always` comes back at a restart
                changed = True
            if changed:
                self.store.save_state(rec.id, st)
                fixed += 1
            if st["status"] != "running":
                cgroups.remove(cgroups.Cgroup.from_dict(st.get("cgroup")).dirs, attempts=1)
            elif st.get("net"):
                running[rec.id] = st["net"]
                self._watch_exit(rec.id, st["pid"], st["net"])
        self.store.prune_tombs()
        self.net.resync(running)
        return {"reconciled": fixed}

    def _always(self, cid: str) -> bool:
        rec = self.store.load(cid, with_config=True)
        return rec is not None and restart.policy_of(rec.config)["name"] == "always"


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


def _etc_files(hostname: str, network: str, net=None) -> dict:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf of a container.  Its init writes them
    into its own /dev tmpfs at each start and bind-mounts them (rootfs.bind_etc_files): no
    files on disk per container."""
    hosts = hosts_text(hostname, host_network=network == "host")
    if network == "host":
        resolv = _read("/etc/resolv.conf")
    else:
        if network == "none":
            resolv = "# --network none: no DNS\n"
        elif network != "bridge" and net is not None:
            # a user-defined network: its resolver (names of the containers on it, others
            # forwarded to the host's resolvers), on the gateway
            resolv = f"nameserver {net.gateway}\noptions ndots:0\n"
        else:
            from minibox.net import resolv as net_resolv
            resolv = net_resolv.for_namespace()
    return {"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": resolv}


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


def _health(spec: ContainerSpec, labels: dict) -> dict | None:
    from minibox.runtime.health import health_config
    return health_config(spec, labels)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


__all__ = ["Runtime"]

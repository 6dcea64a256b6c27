"""A cgroup per container: v2 where its controllers exist, else v1 (this host: v1 hybrid).

``plan(cid, spec)`` makes the directories and writes every limit *before* the container
exists; the monitor then moves the container's init in with ``attach(dirs, pid)`` while
the init is still mounting its rootfs (the first cgroup.procs write costs 5-15 ms here, so
it overlaps the setup instead of adding to it).  ``remove(dirs)`` runs when the container
has exited.

Limits: memory (swap limited to the same, so an overrun is an OOM kill, not swapping), CPU
quota (--cpus, period 100 ms), CPU weight (-c, docker's shares: 1024 = normal), cpuset, IO
weight (when the kernel's IO scheduler offers one), pids (default 4096), and devices (v1:
deny all, allow the standard nodes; v2 would need an eBPF program, so there the runtime
drops CAP_MKNOD instead - see ``devices_enforced``).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from dataclasses import dataclass, field

from minibox.errors import UserError

ROOT = "/sys/fs/cgroup"
# The cgroup every container's cgroup lives under (per controller on v1): the settings'
# cgroup_parent (MINIBOX_CGROUP_PARENT: tests and side-by-side farms on one host keep theirs
# apart with it), unless PARENT is set (an in-process override, for tests and benchmarks).
PARENT: str | None = None


def parent_name() -> str:
    """The cgroup (relative to each hierarchy) containers' cgroups are made under."""
    if PARENT:
        return PARENT
    from minibox.config import process_settings
    return process_settings().cgroup_parent
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "freezer")
V2_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")

# (type, major, minor, access) the container may use: null zero full random urandom tty
# console ptmx, the pts slaves (136:*), and mknod of anything (unusable afterwards).
DEVICE_ALLOW = ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:229 rwm",
                "c *:* m", "b *:* m")


def is_v2() -> bool:
    """Pure cgroup2 at /sys/fs/cgroup with the memory controller available."""
    try:
        with open(f"{ROOT}/cgroup.controllers") as f:
            return "memory" in f.read().split()
    except OSError:
        return False


@dataclass
class Cgroup:
    version: int
    dirs: list[str] = field(default_factory=list)   # one per hierarchy (v1) or one (v2)
    warnings: list[str] = field(default_factory=list)

    @property
    def devices_enforced(self) -> bool:
        return self.version == 1 and any(d.startswith(f"{ROOT}/devices/") for d in self.dirs)

    def path(self, controller: str) -> str | None:
        if self.version == 2:
            return self.dirs[0] if self.dirs else None
        for d in self.dirs:
            if d.startswith(f"{ROOT}/{controller}/"):
                return d
        return None

    def to_dict(self) -> dict:
        return {"version": self.version, "dirs": self.dirs, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Cgroup":
        d = d or {}
        return cls(d.get("version", 1), list(d.get("dirs") or []), list(d.get("warnings") or []))


def _write(path: str, *values) -> None:
    """Write each value with its own write(2) (a v1 devices.allow takes one rule per write);
    plain os calls: a start writes a dozen of these, and Python's text files cost 5x."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for v in values:
            os.write(fd, str(v).encode())
    finally:
        os.close(fd)


def _read(path: str, default: str = "") -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return default
    try:
        return os.read(fd, 65536).decode().strip()
    except OSError:
        return default
    finally:
        os.close(fd)


def create(cid: str, spec) -> Cgroup:
    """Make the container's cgroup and write its limits; UserError for a bad value."""
    cg = _create_v2(cid, spec) if is_v2() else _create_v1(cid, spec)
    return cg


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass


def _create_v1(cid: str, spec) -> Cgroup:
    cg = Cgroup(1)
    top_name = parent_name()
    try:
        for ctrl, base in _v1_hierarchies():
            parent = f"{base}/{top_name}"
            d = f"{parent}/{cid}"
            try:
                os.mkdir(d, 0o755)
            except FileNotFoundError:          # the first container under this parent
                _mkdir(parent)
                _mkdir(d)
            except FileExistsError:
                pass
            cg.dirs.append(d)
            if ctrl == "cpuset":
                # Another start may have made the parent a moment ago and not yet filled
                # its cpuset (an empty one refuses every task with ENOSPC): fill the
                # parent here too, idempotently, before the child copies from it.
                _copy_cpuset(base, parent)
                _copy_cpuset(parent, d)
        _limits_v1(cg, spec)
    except BaseException:
        remove(cg.dirs)
        raise
    return cg


_V1: list[tuple[str, str]] = []


def _v1_hierarchies() -> list[tuple[str, str]]:
    """(controller, mount) for each mounted v1 hierarchy, once per mount (cpu and cpuacct
    share one); looked up once per process: mounts do not change under a running engine."""
    if not _V1:
        seen = set()
        for ctrl in V1_CONTROLLERS:
            base = f"{ROOT}/{ctrl}"
            real = os.path.realpath(base)
            if os.path.isdir(base) and real not in seen:
                seen.add(real)
                _V1.append((ctrl, base))
    return _V1


def _copy_cpuset(src: str, dst: str) -> None:
    for f in ("cpuset.cpus", "cpuset.mems"):
        if not _read(f"{dst}/{f}"):
            _write(f"{dst}/{f}", _read(f"{src}/{f}"))


def _limits_v1(cg: Cgroup, spec) -> None:
    mem, cpu, cpuset = cg.path("memory"), cg.path("cpu"), cg.path("cpuset")
    for wanted, have, what in ((spec.memory, mem, "memory limit"), (spec.cpus, cpu, "CPU quota"),
                               (spec.pids_limit > 0, cg.path("pids"), "pids limit")):
        if wanted and not have:
            cg.warnings.append(f"{what} not enforced: its cgroup v1 hierarchy is not mounted")
    if spec.memory and mem:
        _write(f"{mem}/memory.limit_in_bytes", spec.memory)
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            _write(f"{mem}/memory.memsw.limit_in_bytes", spec.memory)
        _write(f"{mem}/memory.swappiness", 0) if os.path.exists(f"{mem}/memory.swappiness") else None
    if cpu:
        if spec.cpus:
            _write(f"{cpu}/cpu.cfs_period_us", 100000)
            _write(f"{cpu}/cpu.cfs_quota_us", int(spec.cpus * 100000))
        if spec.cpu_shares:
            _write(f"{cpu}/cpu.shares", max(2, spec.cpu_shares))
    if spec.cpuset_cpus and cpuset:
        _set_cpuset(f"{cpuset}/cpuset.cpus", spec.cpuset_cpus)
    pids = cg.path("pids")
    if pids and spec.pids_limit > 0:
        _write(f"{pids}/pids.max", spec.pids_limit)
    blkio = cg.path("blkio")
    if spec.io_weight and blkio:
        for f in ("blkio.bfq.weight", "blkio.weight"):
            if os.path.exists(f"{blkio}/{f}"):
                _write(f"{blkio}/{f}", max(10, spec.io_weight))
                break
        else:
            cg.warnings.append("io weight ignored: the block IO scheduler offers no weight")
    dev = cg.path("devices")
    if dev and not spec.privileged:
        _write(f"{dev}/devices.deny", "a")
        _write(f"{dev}/devices.allow", *DEVICE_ALLOW)


def _set_cpuset(path: str, cpus: str) -> None:
    try:
        _write(path, cpus)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ERANGE):
            raise UserError(f"--cpuset-cpus {cpus!r} names CPUs this machine does not have",
                            hint=f"available: {_read(ROOT + '/cpuset/cpuset.cpus') or _read(ROOT + '/cpuset.cpus.effective')}") from None
        raise


def _create_v2(cid: str, spec) -> Cgroup:
    cg = Cgroup(2)
    top = f"{ROOT}/{parent_name()}"
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS
                      if c in _read(f"{ROOT}/cgroup.controllers").split())
    _mkdir(top)
    for p in (ROOT, top) if wanted else ():
        try:
            _write(f"{p}/cgroup.subtree_control", wanted)
        except OSError:
            cg.warnings.append(f"could not enable controllers in {p}")
    d = f"{top}/{cid}"
    _mkdir(d)
    cg.dirs.append(d)
    try:
        _limits_v2(cg, d, spec)
    except BaseException:
        remove(cg.dirs)
        raise
    return cg


def _limits_v2(cg: Cgroup, d: str, spec) -> None:
    """Each limit whose controller is not enabled here (its file is missing: a hybrid host's
    unified hierarchy, or a controller not delegated to us) is a warning, as in Docker,
    not a silent no-op."""
    if spec.memory:
        if _limit(cg, f"{d}/memory.max", spec.memory, "memory limit", "memory"):
            if os.path.exists(f"{d}/memory.swap.max"):
                _write(f"{d}/memory.swap.max", 0)
    if spec.cpus:
        _limit(cg, f"{d}/cpu.max", f"{int(spec.cpus * 100000)} 100000", "CPU quota", "cpu")
    if spec.cpu_shares:
        _limit(cg, f"{d}/cpu.weight", 1 + ((max(2, spec.cpu_shares) - 2) * 9999) // 262142,
               "CPU weight", "cpu")
    if spec.cpuset_cpus:
        if os.path.exists(f"{d}/cpuset.cpus"):
            _set_cpuset(f"{d}/cpuset.cpus", spec.cpuset_cpus)
        else:
            _limit(cg, f"{d}/cpuset.cpus", spec.cpuset_cpus, "cpuset", "cpuset")
    if spec.pids_limit > 0:
        _limit(cg, f"{d}/pids.max", spec.pids_limit, "pids limit", "pids")
    if spec.io_weight:
        _limit(cg, f"{d}/io.weight", f"default {max(1, spec.io_weight)}", "IO weight", "io")


def _limit(cg: Cgroup, path: str, value, what: str, controller: str) -> bool:
    if not os.path.exists(path):
        cg.warnings.append(f"{what} not enforced: the cgroup v2 {controller} controller is "
                           "not enabled for minibox's cgroups")
        return False
    _write(path, value)
    return True


def prime(max_seconds: float = 2.0) -> "_Warmth":
    """Take the kernel's slow part of a first cgroup.procs write off the start path.

    Moving a task between cgroups takes cgroup_threadgroup_rwsem for writing, and the first
    writer after a quiet spell waits a whole RCU grace period (rcu_sync_enter: the 5-15 ms
    of a first cgroup.procs write here, v1 or v2); writers that come while another one is
    in, or within about a grace period after, do not wait.  So while containers start, one
    thread writes our own pid into the cgroup we are in already (a no-op move) whenever
    no attach happened for a few ms, and the monitor's real attach finds the grace period
    passed.  During a burst of starts their own attaches keep it warm and the thread writes
    nothing (each no-op move of this many-threaded worker costs CPU).  Call it after making
    the cgroup (the writer holds cgroup_mutex, which mkdir needs, during its wait); call
    ``done()`` on the result once the container is in its cgroup."""
    return _WARMER.enter(max_seconds)


class _Warmer:
    INTERVAL = 0.004     # how often the thread looks
    QUIET = 0.008        # write when no cgroup.procs write is known for this long (a grace
                         # period here is 10-25 ms: the state stays warm)

    def __init__(self):
        self.cond = threading.Condition()
        self.active = 0
        self.running = False
        self.last = 0.0          # the last cgroup.procs write we know of (ours or an attach)
        self.until = 0.0

    def enter(self, max_seconds: float) -> "_Warmth":
        path = _own_procs()
        with self.cond:
            self.active += 1
            self.until = max(self.until, time.monotonic() + max_seconds)
            if path and not self.running:
                self.running = True
                threading.Thread(target=self._loop, args=(path,), name="cgroup-prime",
                                 daemon=True).start()
        return _Warmth(self)

    def leave(self) -> None:
        with self.cond:
            self.active -= 1
            self.last = time.monotonic()     # the container's attach is done by now
            if not self.active:
                self.cond.notify_all()

    def _loop(self, path: str) -> None:
        pid = str(threading.get_native_id() if path.endswith("/tasks") else os.getpid())
        while True:
            with self.cond:
                now = time.monotonic()
                if not self.active or now >= self.until:
                    self.running = False     # decided under the lock: enter() starts anew
                    return
                due = now - self.last >= self.QUIET
            if due:
                try:
                    _write(path, pid)
                except OSError:
                    with self.cond:
                        self.running = False
                    return
                with self.cond:
                    self.last = time.monotonic()
            with self.cond:
                if self.active:
                    self.cond.wait(self.INTERVAL)


class _Warmth:
    """One start's share of the warmer; ``done()`` (idempotent) when its attach is done."""

    def __init__(self, warmer: _Warmer):
        self.warmer = warmer
        self.open = True

    def done(self) -> None:
        if self.open:
            self.open = False
            self.warmer.leave()


_WARMER = _Warmer()
_OWN_PROCS: list[str] = []


def _own_procs() -> str:
    """Where a no-op move of the warming thread is written: v1 ``tasks`` (moves that one
    thread, not the whole many-threaded worker) or v2 ``cgroup.procs`` of the cgroup this
    process is in (one hierarchy is enough: the lock is global); '' if not found."""
    if not _OWN_PROCS:
        path = ""
        try:
            with open("/proc/self/cgroup") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            _hid, ctrls, rel = line.split(":", 2)
            if ctrls == "" and is_v2():
                path = f"{ROOT}{rel}"
            elif "pids" in ctrls.split(","):
                path = f"{ROOT}/pids{rel}"
            if path:
                break
        leaf = "cgroup.procs" if path and is_v2() else "tasks"
        _OWN_PROCS.append(f"{path.rstrip('/')}/{leaf}" if path else "")
    return _OWN_PROCS[0]


def attach(dirs: list[str], pid: int) -> None:
    for d in dirs:
        _write(f"{d}/cgroup.procs", pid)


def oom_killed(cg: Cgroup) -> bool:
    mem = cg.path("memory")
    if not mem:
        return False
    text = _read(f"{mem}/memory.events" if cg.version == 2 else f"{mem}/memory.oom_control")
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "oom_kill" and v.strip().isdigit():
            return int(v) > 0
    return False


def remove(dirs: list[str], attempts: int = 50) -> list[str]:
    """rmdir each directory (retrying while the last tasks die); the ones left over."""
    left = []
    for d in dirs:
        for i in range(attempts):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or i == attempts - 1:
                    left.append(d)
                    break
                time.sleep(0.002 * (i + 1))
    return left

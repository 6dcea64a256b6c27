"""The runtime queue's messages, and the start plan the runtime worker hands to a monitor.

- ``ContainerSpec`` (with ``Mount`` and ``HealthSpec``): a container as the user asked for
  it, already validated (``minibox.runtime.spec.from_request``, at the API edge).  It is what
  the daemon queues to the runtime worker (the ``run`` and ``create`` tasks), and what
  config.json keeps under "spec".  The worker decodes it (``from_wire``) and does not
  validate it again.
- ``StartResult``: what the ``run`` and ``start`` tasks answer (worker -> daemon).
- ``ProcessSpec`` and ``StartPlan``: every decision of one start, made by the runtime
  worker (minibox.runtime.verbs.start), read by the monitor and the container's init (Python:
  pickled to the zygote or forked; compiled: ``StartPlan.encode`` -> ``minimon --start``).

Frozen dataclasses with ``to_wire()`` / ``from_wire()`` as in ``minibox.wire.build``.
Nothing else of MiniBox is imported here.
"""

from __future__ import annotations

import dataclasses
import os
import resource
from dataclasses import asdict, dataclass, field, fields

from minibox.wire.codec import ProtocolError, from_wire, to_wire

DEFAULT_LOG_MAX_SIZE = 10 << 20     # bytes of a container's log file before it rotates
DEFAULT_LOG_MAX_FILES = 3           # log files a container keeps
DEFAULT_PIDS_LIMIT = 4096
DEFAULT_SHM_SIZE = 64 << 20


@dataclass(frozen=True)
class HealthSpec:
    cmd: list[str]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class Mount:
    source: str          # absolute host path (bind), a volume name, "" (anonymous volume)
    target: str          # absolute path inside the container
    readonly: bool = False
    kind: str = "bind"   # bind | volume | tmpfs
    options: str = ""    # tmpfs data (size=...)


@dataclass(frozen=True)
class ContainerSpec:
    """A validated run/create request (daemon -> runtime worker)."""

    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    name: str | None = None
    env: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "bridge"         # bridge (the default network), none, host, or a name
    ports: list[dict] = field(default_factory=list)     # minibox.net.ports.PortMap dicts
    publish_all: bool = False       # -P: the image's PORTs to free host ports
    network_aliases: list[str] = field(default_factory=list)   # more names on its network
    # its other user-defined networks (eth1...): name -> its aliases there (compose)
    extra_networks: dict[str, list[str]] = field(default_factory=dict)
    memory: int = 0                 # bytes; 0 = no limit
    cpus: float = 0.0               # CPUs of quota; 0 = no quota
    cpu_shares: int = 0             # relative weight (docker's -c; 1024 = normal)
    cpuset_cpus: str = ""
    io_weight: int = 0              # 10..1000; 0 = unset
    pids_limit: int = DEFAULT_PIDS_LIMIT   # <= 0: unlimited
    oom_score_adj: int = 0
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    interactive: bool = False
    autoremove: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    seccomp: bool = True
    no_new_privileges: bool = True
    health: HealthSpec | None = None
    no_healthcheck: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    db_mode: bool = False
    log_max_size: int = DEFAULT_LOG_MAX_SIZE
    log_max_files: int = DEFAULT_LOG_MAX_FILES
    restart: dict = field(default_factory=lambda: {"name": "no", "max_retries": 0})

    def to_wire(self) -> dict:
        return asdict(self)

    to_dict = to_wire         # config.json's "spec"

    @classmethod
    def from_wire(cls, data: dict) -> "ContainerSpec":
        """A queued spec (or config.json's): shape only (it was validated where it entered);
        keys this version does not know are ignored, a missing image is a ProtocolError."""
        if not isinstance(data, dict) or not isinstance(data.get("image"), str):
            raise ProtocolError("container spec: expected an object with an image; are the "
                                "daemon and the runtime worker the same MiniBox version?")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["mounts"] = [m if isinstance(m, Mount) else Mount(**m) for m in kw.get("mounts") or []]
        h = kw.get("health")
        if isinstance(h, dict):
            kw["health"] = HealthSpec(**h)
        return cls(**kw)

    from_dict = from_wire


@dataclass(frozen=True)
class StartResult:
    """The answer of a ``run`` or ``start`` task: the started container."""

    id: str
    name: str
    status: str
    run: int = 0
    pid: int = 0
    warnings: list[str] = field(default_factory=list)
    log_link: str | None = None      # run with attach: the log's link (streams.open_attach_log)

    @classmethod
    def of_state(cls, state: dict, log_link: str | None = None) -> "StartResult":
        return cls(id=state["id"], name=state.get("name", ""), status=state["status"],
                   run=int(state.get("run") or 0), pid=int(state.get("pid") or 0),
                   warnings=list(state.get("warnings") or []), log_link=log_link)

    def to_wire(self) -> dict:
        return to_wire(self)

    @classmethod
    def from_wire(cls, data: dict) -> "StartResult":
        return from_wire(cls, data, "start result")


@dataclass(frozen=True)
class ProcessSpec:
    """The container's process, resolved from the spec and the image (config.json's
    "process")."""

    argv: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)

    @classmethod
    def from_wire(cls, data: dict) -> "ProcessSpec":
        return from_wire(cls, data, "container process")

    def to_wire(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StartPlan:
    """One start of a container, every decision made (runtime worker -> its monitor and init).

    Paths are on the host; ``rootfs`` is the overlay's mount point inside the container's
    own mount namespace."""

    id: str
    name: str
    run: int                              # this start's number (exit.json says which run)
    dir: str                              # DataRoot/containers/<id>
    data_root: str
    rootfs: str
    upper: str
    work: str
    lowers: list[str]                     # layer dirs, top-most first (init layer on top)
    mounts: list[dict]                    # config.json's mounts (kind, target, host_path ...)
    etc_files: dict | None                # hostname, hosts, resolv.conf (None: files in dir)
    hostname: str
    network: str
    shm_size: int
    sysctls: dict[str, str]
    process: ProcessSpec
    caps_mask: int
    cgroup_dirs: list[str]
    cgroup_version: int
    tty: bool = False
    interactive: bool = False
    privileged: bool = False
    no_new_privs: bool = True
    seccomp: bytes | None = None          # a compiled BPF filter, loaded raw
    oom_score_adj: int = 0
    autoremove: bool = False
    log_max_size: int = DEFAULT_LOG_MAX_SIZE
    log_max_files: int = DEFAULT_LOG_MAX_FILES
    rlimits: dict[str, tuple[int, int]] = field(default_factory=dict)   # RLIMIT_* -> soft, hard
    minimon: str | None = None            # the compiled monitor (None: the Python one)
    # --rm: the volume dirs the monitor deletes once the container has exited
    anonymous_volumes: list[str] = field(default_factory=list)
    netns: str | None = None              # a network namespace to join (bridge networks)

    def with_netns(self, path: str | None) -> "StartPlan":
        return dataclasses.replace(self, netns=path)

    def encode(self, clone_flags: int, fs_steps: list[tuple], init_path: str) -> bytes:
        """The compiled start's spec: NUL-terminated tokens in the order of mbstart.c's
        ``parse``.  ``clone_flags`` and ``fs_steps`` (rootfs.OP_FIELDS per step) are the
        runtime's decisions for this plan (minibox.runtime.start.rootfs); ``init_path`` is where
        tini is inside the container."""
        proc = self.process
        env = dict(e.split("=", 1) for e in proc.env)
        vols = list(self.anonymous_volumes) if self.autoremove else []
        rl = []
        for name, (soft, hard) in self.rlimits.items():
            rl += [getattr(resource, name), soft, hard]
        tokens = [
            "MB1", self.dir, self.data_root, self.id, self.name or "",
            self.run, 1 if self.autoremove else 0,
            self.log_max_size, len(vols), *vols,
            len(self.cgroup_dirs), *self.cgroup_dirs,
            clone_flags, int(self.tty), int(self.interactive),
            int(self.network == "host"), self.netns or "", self.hostname,
            self.rootfs,
            len(fs_steps), *(x for o in fs_steps for x in o),
            proc.cwd or "/", env.get("PATH", "/usr/bin:/bin"), init_path,
            len(proc.argv), *proc.argv,
            len(env), *(f"{key}={v}" for key, v in env.items()),
            proc.uid, proc.gid, len(proc.groups), *proc.groups,
            self.caps_mask, int(self.privileged),
            int(self.no_new_privs), (self.seccomp or b"").hex(),
            len(rl) // 3, *rl, self.oom_score_adj, "END",
        ]
        strs = [t if isinstance(t, str) else str(int(t)) for t in tokens]
        text = "\0".join(strs) + "\0"
        if text.count("\0") != len(strs):
            bad = next(t for t in strs if "\0" in t)
            raise NulInPlan(bad)
        return os.fsencode(text)


class NulInPlan(ValueError):
    """A NUL byte in a token of the compiled start's spec (the runtime turns it into a
    UserError: commands, environment and paths cannot contain NUL)."""

    def __init__(self, token: str):
        super().__init__(f"a NUL byte in the container's configuration: {token!r}")
        self.token = token

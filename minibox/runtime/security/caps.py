"""Capability names, Docker's default set, and the sets a container gets.

A container's bounding, permitted and effective sets are Docker's default set (adjusted by
--cap-add/--cap-drop, or everything with --privileged), always intersected with what the
engine itself holds (root here lacks CAP_SYS_RESOURCE).  The inheritable and ambient sets
are empty, as in Docker since CVE-2022-24769.  A workload running as a non-root user gets
empty permitted/effective sets (the kernel clears them on setuid), keeping the bounding set.
"""

from __future__ import annotations

from minibox.errors import UserError

NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
NUMBER = {name: i for i, name in enumerate(NAMES)}

DOCKER_DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                  "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                  "AUDIT_WRITE")

# `minibox db run`: databases lock memory (IPC_LOCK: mlock'd buffers, huge pages) and tune
# their threads' priority (SYS_NICE: mongod, postgres' background workers).  Nothing that
# reaches outside the container (no SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE ...).
DB_EXTRA = ("IPC_LOCK", "SYS_NICE")


def normalize(name: str) -> str:
    n = name.strip().upper()
    if n.startswith("CAP_"):
        n = n[4:]
    if n != "ALL" and n not in NUMBER:
        raise UserError(f"unknown capability {name!r}",
                        hint="use names like NET_ADMIN or CAP_NET_ADMIN, or ALL")
    return n


def mask_of(names) -> int:
    m = 0
    for n in names:
        m |= 1 << NUMBER[n]
    return m




def container_caps(*, privileged: bool = False, add=(), drop=(), extra=()) -> list[str]:
    """The capability names a container keeps (before intersecting with the engine's)."""
    if privileged:
        return list(NAMES)
    add = [normalize(c) for c in add]
    drop = [normalize(c) for c in drop]
    keep = set() if "ALL" in drop else set(DOCKER_DEFAULT) | set(extra)
    keep -= set(drop)
    keep |= set(NAMES) if "ALL" in add else set(add)
    return [n for n in NAMES if n in keep]


def engine_mask() -> int:
    """What this process holds in its bounding and permitted sets."""
    from minibox import kernel
    _, permitted, _ = kernel.capget()
    return permitted

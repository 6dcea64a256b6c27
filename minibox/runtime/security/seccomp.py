"""The containers' seccomp filter: compiled once with libseccomp, loaded raw in the child.

A deny list on top of default-allow, holding at least Docker's default denials (kernel
modules, kexec/reboot, mount and namespace calls, keyrings, ptrace and process_vm_*, bpf,
perf, swap, clock and time setting, handle-based opens, userfaultfd, raw I/O ports ...),
each answering EPERM.  ``clone3`` answers ENOSYS so glibc >= 2.34 falls back to ``clone``
(moby#42680), and ``clone`` itself is refused when it asks for a new namespace (what Docker's
profile does), since otherwise an unprivileged workload could still create a user namespace.
``personality`` may not set the flags that weaken the address space (ASLR off ...).

The filter covers x86_64 plus the i386 and x32 ABIs (libseccomp adds the arch checks and
handles the x32 syscall bit); a syscall from any other arch kills the process.

``compile_filter()`` returns the packed ``struct sock_filter[]``; the container child loads it
with ``kernel.seccomp_load`` (TSYNC) as its very last step before exec, so libseccomp never
runs in the child and the forked process needs no import after pivot_root.
"""

from __future__ import annotations

import errno
import os
import platform
import tempfile

DENIED = (
    # kernel, modules, boot
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "create_module", "query_module", "get_kernel_syms", "uselib",
    # mounts and namespaces
    "mount", "umount", "umount2", "pivot_root", "mount_setattr", "fsopen", "fsmount",
    "move_mount", "fspick", "open_tree", "unshare", "setns",
    # other processes' memory and handles
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "name_to_handle_at",
    "open_by_handle_at", "pidfd_getfd",
    # kernel facilities
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "add_key", "request_key",
    "keyctl", "fanotify_init", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mbind", "migrate_pages", "move_pages", "set_mempolicy", "get_mempolicy",
    # host-wide state
    "swapon", "swapoff", "acct", "settimeofday", "stime", "clock_settime", "clock_adjtime",
    "adjtimex", "nfsservctl", "quotactl", "quotactl_fd", "syslog", "sysfs", "ustat",
    "vhangup", "iopl", "ioperm", "_sysctl", "vm86", "vm86old",
)

# clone flags that create namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
# NEWPID, NEWNET): clone with any of them is refused.
NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
            0x40000000)

# personality flags refused: ADDR_NO_RANDOMIZE, FDPIC_FUNCPTRS, MMAP_PAGE_ZERO,
# ADDR_COMPAT_LAYOUT, READ_IMPLIES_EXEC, ADDR_LIMIT_32BIT, ADDR_LIMIT_3GB
PERSONALITY_DENIED_FLAGS = (0x0040000, 0x0080000, 0x0100000, 0x0200000, 0x0400000,
                            0x0800000, 0x8000000)

_CACHE: dict[tuple, bytes] = {}


def compile_filter(relax: frozenset[str] = frozenset()) -> bytes:
    """The packed BPF program (cached per process).  ``relax``: syscalls to leave allowed
    (e.g. the mount family when a container was given CAP_SYS_ADMIN explicitly)."""
    key = tuple(sorted(relax))
    bpf = _CACHE.get(key)
    if bpf is None:
        bpf = _CACHE[key] = _build(relax)
    return bpf


def _build(relax: frozenset[str]) -> bytes:
    import pyseccomp as sc

    flt = sc.SyscallFilter(sc.ALLOW)
    if platform.machine() == "x86_64":
        for arch in (sc.Arch.X86, sc.Arch.X32):
            if not flt.exist_arch(arch):
                flt.add_arch(arch)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        if name not in relax:
            _add(flt, eperm, name)
    _add(flt, sc.ERRNO(errno.ENOSYS), "clone3")
    if "clone" not in relax:
        for flag in NS_FLAGS:
            _add(flt, eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    _restrict_personality(flt, sc, eperm)
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


def _restrict_personality(flt, sc, eperm: int) -> None:
    # Refuse the personality flags that weaken the address space (ASLR off, executable
    # data, page zero ...).  Bit 31 is never set in a real persona; 0xffffffff is the
    # "query" call, which stays allowed.
    for flag in PERSONALITY_DENIED_FLAGS:
        _add(flt, eperm, "personality", sc.Arg(0, sc.MASKED_EQ, flag | 0x80000000, flag))


def _add(flt, action: int, name: str, *args) -> None:
    try:
        flt.add_rule(action, name, *args)
    except (OSError, ValueError, RuntimeError):
        pass   # a syscall unknown to this arch or libseccomp version


def describe() -> dict:
    """What the filter does, for ``inspect``."""
    return {"default": "allow", "denied_eperm": list(DENIED), "clone3": "ENOSYS",
            "clone_namespace_flags": "EPERM", "archs": _archs()}


def _archs() -> list[str]:
    return ["x86_64", "x86", "x32"] if platform.machine() == "x86_64" else [platform.machine()]


if __name__ == "__main__":   # pragma: no cover - a quick look at the program size
    print(len(compile_filter()) // 8, "instructions", os.getpid())

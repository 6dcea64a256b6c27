"""Namespaces: unshare, setns, entering another process's, the hostname of a UTS namespace,
and a fork into new namespaces (linux/sched.h)."""

from __future__ import annotations

import ctypes
import os
import platform

from minibox.errors import KernelError
from minibox.kernel.libc import fail as _fail, libc as _libc

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine(), 56)
_SIGCHLD = 17

_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    if _libc.setns(fd, nstype) != 0:
        _fail(f"setns(fd={fd}, type={nstype:#x})")


def enter_namespaces(pid: int, kinds: list[str]) -> None:
    """setns into ``/proc/PID/ns/<kind>`` for each kind ("ipc", "uts", "net", "pid", "mnt").

    Open every fd first (entering mnt changes what /proc means), then enter in order; the
    mount namespace should come last.
    """
    fds = [(k, os.open(f"/proc/{pid}/ns/{k}", os.O_RDONLY | os.O_CLOEXEC)) for k in kinds]
    try:
        for kind, fd in fds:
            try:
                setns(fd, 0)
            except KernelError as e:
                raise KernelError(f"cannot enter the {kind} namespace of pid {pid}: "
                                  f"{e.message}", errno=e.errno) from None
    finally:
        for _, fd in fds:
            os.close(fd)


def sethostname(name: str) -> None:
    data = name.encode()
    if _libc.sethostname(data, len(data)) != 0:
        _fail(f"sethostname({name!r})")



def clone_process(flags: int) -> int:
    """fork(2) with namespace ``flags`` (CLONE_NEW*): the child gets 0, the parent its pid.

    A raw clone syscall with no new stack behaves like fork but skips glibc's and Python's
    at-fork handlers: call it only from a single-threaded process (the container monitor).
    """
    pid = _libc.syscall(ctypes.c_long(_SYS_CLONE), ctypes.c_ulong(flags | _SIGCHLD),
                        ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_void_p(0),
                        ctypes.c_ulong(0))
    if pid < 0:
        _fail(f"clone({flags:#x})")
    return pid

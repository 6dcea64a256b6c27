"""This process's own state: prctl, capabilities, signal dispositions, a seccomp filter,
and pidfds of others (linux/prctl.h, linux/capability.h, linux/seccomp.h)."""

from __future__ import annotations

import ctypes
import platform
import signal

from minibox.kernel.libc import fail as _fail, libc as _libc

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(platform.machine(), 317)
_SYS_PIDFD_OPEN = 434
_SYS_PIDFD_SEND_SIGNAL = 424
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1

_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    rc = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if rc < 0:
        _fail(f"prctl({option})")
    return rc


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent thread dies."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_process_name(name: str) -> None:
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _libc.prctl(PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0)


# --- capabilities --------------------------------------------------------------------
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def cap_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(hdr), data) != 0:
        _fail("capget")
    eff = data[0].effective | (data[1].effective << 32)
    prm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective, data[1].effective = effective & 0xFFFFFFFF, effective >> 32
    data[0].permitted, data[1].permitted = permitted & 0xFFFFFFFF, permitted >> 32
    data[0].inheritable, data[1].inheritable = inheritable & 0xFFFFFFFF, inheritable >> 32
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        _fail("capset")


def drop_bounding_caps(keep: int) -> None:
    """Drop every capability not in the ``keep`` mask from the bounding set."""
    for cap in range(cap_last_cap() + 1):
        if not keep & (1 << cap):
            if _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
                prctl(PR_CAPBSET_DROP, cap)


def clear_ambient_caps() -> None:
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


# --- signals ------------------------------------------------------------------------
def reset_signals() -> None:
    """Restore default dispositions Python changed, so an exec'd program behaves normally."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM,
                signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])



class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_load(bpf: bytes) -> None:
    """Install a classic-BPF seccomp filter (``bpf``: packed struct sock_filter[]) on every
    thread of this process (TSYNC).  no_new_privs (or CAP_SYS_ADMIN) must already hold."""
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p).value)
    rc = _libc.syscall(ctypes.c_long(_SYS_SECCOMP), ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                       ctypes.c_ulong(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog))
    if rc != 0:
        _fail("seccomp(SET_MODE_FILTER)")


def pidfd_open(pid: int) -> int:
    """A pollable fd that becomes readable when ``pid`` exits (Linux >= 5.3)."""
    fd = _libc.syscall(ctypes.c_long(_SYS_PIDFD_OPEN), ctypes.c_int(pid), ctypes.c_uint(0))
    if fd < 0:
        _fail(f"pidfd_open({pid})")
    return fd


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """kill(2) through a pidfd: never hits a reused pid."""
    rc = _libc.syscall(ctypes.c_long(_SYS_PIDFD_SEND_SIGNAL), ctypes.c_int(pidfd),
                       ctypes.c_int(sig), ctypes.c_void_p(0), ctypes.c_uint(0))
    if rc != 0:
        _fail(f"pidfd_send_signal(sig={sig})")

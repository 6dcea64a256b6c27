"""Every raw kernel call MiniBox makes, behind one small module.

Python 3.11 has no os.unshare/os.setns/mount, so these go through libc with ctypes.  Each
wrapper raises ``minibox.errors.KernelError`` with the call, its arguments and the errno text,
so callers above this module never look at errno values.

Notes measured on the target machines (see FIELD-NOTES.md):
- after pivot_root a forked Python cannot import anything: import what you need first and
  exec with absolute paths (os.execve, never os.execvpe);
- Python leaves SIGPIPE and SIGXFSZ ignored across exec: ``reset_signals()`` before exec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import signal

from minibox.errors import KernelError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# --- constants (linux/sched.h, linux/mount.h, linux/prctl.h) ---------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine(), 155)

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _fail(what: str, hint: str | None = None) -> None:
    err = ctypes.get_errno()
    raise KernelError(f"{what}: {os.strerror(err)}", errno=err, hint=hint)


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        _fail(f"mount {fstype or ''} {source or ''} on {target} (flags={flags:#x}, "
              f"data={data!r})")


def bind_mount(source: str, target: str, *, readonly: bool = False, recursive: bool = True,
               flags: int = 0) -> None:
    """Bind ``source`` onto ``target``; a read-only bind needs a second remount call."""
    base = MS_BIND | (MS_REC if recursive else 0)
    mount(source, target, None, base | flags)
    if readonly:
        mount(None, target, None, base | MS_REMOUNT | MS_RDONLY | flags)


def make_private(target: str = "/") -> None:
    """Stop mount events propagating back to the host (run first in a new mount ns)."""
    mount(None, target, None, MS_REC | MS_PRIVATE)


def umount(target: str, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        _fail(f"umount {target}")


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


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)) != 0:
        _fail(f"pivot_root({new_root}, {put_old})")


def pivot_into(new_root: str) -> None:
    """Make ``new_root`` (a mount point) the root of this mount namespace, dropping the old.

    Uses the pivot_root(".", ".") idiom, so no directory for the old root has to be made
    inside the new root (nothing leaks into an image layer).
    """
    os.chdir(new_root)
    pivot_root(".", ".")
    umount(".", MNT_DETACH)
    os.chdir("/")


def sethostname(name: str) -> None:
    data = name.encode()
    if _libc.sethostname(data, len(data)) != 0:
        _fail(f"sethostname({name!r})")


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


# --- runtime additions ---------------------------------------------------------------
# Used by minibox.runtime (containers).  Nothing above this line is changed by them.

_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine(), 56)
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(platform.machine(), 317)
_SYS_PIDFD_OPEN = 434
_SYS_PIDFD_SEND_SIGNAL = 424
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
_SIGCHLD = 17


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


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


# --- sandbox additions ---
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def set_link_up(name: str = "lo") -> None:
    """Bring network interface ``name`` up in this network namespace (ioctl SIOCSIFFLAGS)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = struct.pack("16sH14x", name.encode()[:15], 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode()[:15],
                                                               flags | _IFF_UP))
        except OSError as e:
            raise KernelError(f"cannot bring interface {name} up: {e.strerror}",
                              errno=e.errno or 0) from None


# --- store additions ---
_libc.syncfs.argtypes = [ctypes.c_int]


def syncfs(path: str) -> None:
    """Flush the filesystem that holds ``path`` (not every filesystem, as sync(2) does)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            _fail(f"syncfs({path})")
    finally:
        os.close(fd)


_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a file's range to disk now, without waiting (sync_file_range(2)), so
    that the fsync at its end finds little left to write.  Only a hint: a failure is
    ignored (the fsync still makes the file durable)."""
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


# --- posix_spawn ----------------------------------------------------------------------
POSIX_SPAWN_SETSID = 0x80          # glibc's value
_SPAWN_BUF = 512                   # > sizeof(posix_spawn_file_actions_t), posix_spawnattr_t
for _name in ("posix_spawn_file_actions_init", "posix_spawn_file_actions_destroy",
              "posix_spawnattr_init", "posix_spawnattr_destroy"):
    getattr(_libc, _name).argtypes = [ctypes.c_void_p]
_libc.posix_spawn_file_actions_adddup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_libc.posix_spawn_file_actions_addopen.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                                   ctypes.c_int, ctypes.c_uint]
_libc.posix_spawnattr_setflags.argtypes = [ctypes.c_void_p, ctypes.c_short]
_libc.posix_spawn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]


def posix_spawn(path: str, argv: list[str], dup2: list[tuple[int, int]], *,
                devnull: tuple[int, ...] = (0, 1, 2), setsid: bool = False) -> int:
    """posix_spawn(3) with an empty environment; returns the child's pid.

    Unlike ``os.posix_spawn`` (which holds the GIL while the vfork'd child execs, stalling
    every other thread of the runtime worker), the call runs with the GIL released.
    ``devnull``: fds opened on /dev/null first; ``dup2``: (source, target) pairs, in order
    (sources must not be among the targets); ``setsid``: the child starts a new session."""
    fa = ctypes.create_string_buffer(_SPAWN_BUF)
    attr = ctypes.create_string_buffer(_SPAWN_BUF)
    _libc.posix_spawn_file_actions_init(fa)
    _libc.posix_spawnattr_init(attr)
    try:
        for fd in devnull:
            _libc.posix_spawn_file_actions_addopen(fa, fd, b"/dev/null", os.O_RDWR, 0)
        for src, dst in dup2:
            _libc.posix_spawn_file_actions_adddup2(fa, src, dst)
        if setsid:
            _libc.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID)
        args = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
        env = (ctypes.c_char_p * 1)(None)
        pid = ctypes.c_int(0)
        err = _libc.posix_spawn(ctypes.byref(pid), os.fsencode(path), fa, attr, args, env)
        if err:
            raise KernelError(f"posix_spawn {path}: {os.strerror(err)}", errno=err)
        return pid.value
    finally:
        _libc.posix_spawn_file_actions_destroy(fa)
        _libc.posix_spawnattr_destroy(attr)


# --- inode flags ----------------------------------------------------------------------
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def set_topdir(path: str) -> bool:
    """Mark ``path`` as the top of independent directory hierarchies (``chattr +T``): ext4's
    Orlov allocator then spreads the directories made in it over the block groups.  False
    where the filesystem has no such flag (nothing changes there)."""
    import fcntl
    import struct
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        flags = struct.unpack_from("i", buf)[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("iI", flags | FS_TOPDIR_FL, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# --- net additions (minibox/net: a namespace's eth0, set up from inside it) ---
_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_SIOCADDRT = 0x890B
_RTF_UP, _RTF_GATEWAY = 0x1, 0x2


def _ifreq_inet(name: str, addr: str) -> bytes:
    import socket
    import struct

    sin = struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(addr))
    return struct.pack("16s16s8x", name.encode()[:15], sin)


def set_ipv4_address(name: str, address: str, prefixlen: int) -> None:
    """Give interface ``name`` ``address/prefixlen`` in this thread's network namespace
    (ioctl SIOCSIFADDR + SIOCSIFNETMASK: no netlink library, microseconds)."""
    import fcntl
    import ipaddress
    import socket

    mask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefixlen}").netmask)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), _SIOCSIFADDR, _ifreq_inet(name, address))
            fcntl.ioctl(s.fileno(), _SIOCSIFNETMASK, _ifreq_inet(name, mask))
        except OSError as e:
            raise KernelError(f"cannot give {name} the address {address}/{prefixlen}: "
                              f"{e.strerror}", errno=e.errno or 0) from None


def add_default_route(gateway: str) -> None:
    """``default via gateway`` in this thread's network namespace (ioctl SIOCADDRT)."""
    import fcntl
    import socket
    import struct

    def sin(a: str) -> bytes:
        return struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(a))

    # struct rtentry (LP64): pad1, dst, gateway, genmask, flags, pad2, pad3, pad4, metric,
    # dev, mtu, window, irtt
    rt = struct.pack("@L16s16s16sHhLPhPLLH", 0, sin("0.0.0.0"), sin(gateway), sin("0.0.0.0"),
                     _RTF_UP | _RTF_GATEWAY, 0, 0, 0, 0, 0, 0, 0, 0)
    rt += b"\0" * (-len(rt) % 8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), _SIOCADDRT, rt)
        except OSError as e:
            raise KernelError(f"cannot add the default route via {gateway}: {e.strerror}",
                              errno=e.errno or 0) from None

"""The container's first process, from clone() to exec of tini.

Runs in the child the monitor cloned into new mount/PID/UTS/IPC(/net) namespaces.  After
pivot_root nothing may be imported (see FIELD-NOTES), so this module only uses what is
loaded already.  Any failure is written to the error pipe as ``<exit code> <message>`` and
the child exits; success is the pipe closing on exec (it is close-on-exec).

Order: stdio (pipes), hostname, rootfs (rootfs.build, which pivots), with -t the console,
wait for the monitor to have put us in the cgroup, rlimits, oom_score_adj, look the command
up (127 if missing), bounding set, user, capabilities, ambient, no_new_privs, seccomp, exec
tini.

The console (-t) is made as runc makes it: a PTY pair from the container's own devpts
instance (mounted by rootfs.mount_dev), the slave our controlling terminal and stdio and
bind-mounted on /dev/console, the master sent to the monitor over a socketpair
(SCM_RIGHTS).  Nothing of the host's /dev/pts is used, and `tty` says /dev/pts/0.
"""

from __future__ import annotations

import array
import fcntl
import os
import resource
import socket
import struct

from minibox import kernel as k
from minibox.runtime.start import rootfs
from minibox.wire.runtime import StartPlan

TIOCSCTTY = 0x540E
TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSWINSZ = 0x5414


def child_main(plan: StartPlan, stdio, err_w: int, go_r: int, tini_fd: int) -> None:
    """Never returns.  ``stdio``: (stdin, stdout, stderr), or with -t the socket to send the
    PTY master on."""
    code = 1
    try:
        code = _setup_and_exec(plan, stdio, go_r, tini_fd)
    except _Exit as e:
        code = e.code
        _report(err_w, e.code, str(e))
    except k.KernelError as e:
        _report(err_w, 1, f"container setup failed: {e.message}")
    except OSError as e:
        _report(err_w, 1, f"container setup failed: {e}")
    except BaseException as e:  # noqa: BLE001 - the child must never return into the worker
        _report(err_w, 1, f"container setup failed: {type(e).__name__}: {e}")
    os._exit(code)


def _report(fd: int, code: int, msg: str) -> None:
    try:
        os.write(fd, f"{code} {msg}".encode("utf-8", "replace"))
    except OSError:
        pass


def _setup_and_exec(plan: StartPlan, stdio, go_r: int, tini_fd: int) -> int:
    if plan.netns:                           # plugged into its network beforehand
        fd = os.open(plan.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            k.setns(fd, k.CLONE_NEWNET)
        finally:
            os.close(fd)
    if not plan.tty:
        _stdio(stdio)
    k.sethostname(plan.hostname)
    if plan.network != "host":
        _loopback_up()
    cwd = rootfs.build(plan, tini_fd)
    if plan.tty:
        _console(stdio)
    if os.read(go_r, 1) != b"g":
        raise OSError("the monitor did not confirm the cgroup")
    os.close(go_r)
    proc = plan.process
    _rlimits(plan.rlimits)
    _oom_score_adj(plan.oom_score_adj)
    os.chdir(cwd)
    env = proc.env
    path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/bin:/bin")
    found = lookup(proc.argv[0], path)
    if found is None or found.startswith("!"):
        what = "is not executable" if found else "executable file not found in $PATH"
        raise _Exit(126 if found else 127, f'exec: "{proc.argv[0]}": {what}')
    drop_privileges(plan.caps_mask, plan.privileged, proc.uid, proc.gid, proc.groups,
                    plan.no_new_privs, plan.seccomp)
    k.reset_signals()
    envd = dict(e.split("=", 1) for e in env)
    os.execve(rootfs.INIT_PATH, [rootfs.INIT_PATH, "--"] + list(proc.argv), envd)
    return 1


class _Exit(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code


def lookup(cmd: str, path: str) -> str | None:
    """The executable ``cmd`` names (PATH search like execvp); '!'+path if not executable."""
    candidates = [cmd] if "/" in cmd else [(d or ".") + "/" + cmd for d in path.split(":")]
    seen = None
    for c in candidates:
        if os.path.isfile(c):
            if os.access(c, os.X_OK):
                return c
            seen = seen or "!" + c
    return seen


def _stdio(stdio) -> None:
    for i, fd in enumerate(stdio):
        if fd != i:
            os.dup2(fd, i)
    for fd in set(stdio):
        if fd > 2:
            os.close(fd)


def _console(sock_fd: int) -> None:
    """After pivot_root: a PTY from our devpts (/dev/pts/ptmx, never the host's), its slave
    on /dev/console and as our controlling terminal and stdio; the master to the monitor."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))          # unlock the slave
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
        # the mount point was made by rootfs.mount_dev
        k.bind_mount(f"/dev/pts/{n}", "/dev/console", recursive=False)
        with socket.socket(fileno=sock_fd) as s:
            s.sendmsg([b"m"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    finally:
        os.close(master)
    os.setsid()
    _stdio((slave, slave, slave))
    fcntl.ioctl(0, TIOCSCTTY, 0)


def _loopback_up() -> None:
    """A new network namespace starts with lo down: bring it up (SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14s", b"lo", 0x1 | 0x8 | 0x40, b"")   # UP|LOOPBACK|RUNNING
        fcntl.ioctl(s.fileno(), 0x8914, ifr)


def _rlimits(limits: dict) -> None:
    for name, (soft, hard) in limits.items():
        res = getattr(resource, name)
        cur_soft, cur_hard = resource.getrlimit(res)
        hard = cur_hard if hard < 0 or (cur_hard >= 0 and hard > cur_hard) else hard
        soft = hard if soft < 0 or (hard >= 0 and soft > hard) else soft
        resource.setrlimit(res, (soft, hard))


def _oom_score_adj(value: int) -> None:
    if value:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(value))
        except OSError:
            pass  # lowering it needs CAP_SYS_RESOURCE; the runtime recorded a warning


def drop_privileges(keep: int, privileged: bool, uid: int, gid: int, groups, no_new_privs: bool,
                    seccomp: bytes | None) -> None:
    """The last step before the exec (of the container's init, or of an exec'd command):
    bounding caps, user, capabilities, no_new_privs, seccomp."""
    if not privileged:
        k.drop_bounding_caps(keep)
    os.setgroups(list(groups or []))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if uid == 0:
        k.capset(keep, keep, 0)
    k.clear_ambient_caps()
    if no_new_privs:
        k.set_no_new_privs()
    if seccomp:
        k.seccomp_load(seccomp)

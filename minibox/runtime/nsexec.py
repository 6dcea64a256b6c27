"""``python -m minibox.runtime.nsexec``: run a command inside a running container.

The spec (JSON) comes on the pipe whose fd number is argv[1].  Order: join the container's cgroup (host paths, so first),
open its namespace fds and its root (/proc/PID/root) while /proc is still the host's, setns
into ipc, uts, net, pid, mnt, then fork (the pid namespace applies to children), and in the
child: chroot to the container's root (never the host's), chdir, drop to the container's
capabilities, user, no_new_privs and seccomp, and exec with the container's environment
(never the daemon's).  The parent waits and exits with the command's code (127 when the
command is not found, like run).
"""

from __future__ import annotations

import errno
import json
import os
import sys

from minibox import kernel as k
from minibox.errors import KernelError
from minibox.runtime.start import init as cinit   # loaded before setns: no import after it

NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")


def main() -> int:
    with os.fdopen(int(sys.argv[1]), "rb") as f:
        spec = json.loads(f.read())
    try:
        child = _enter_and_fork(spec)
    except (OSError, KernelError) as e:
        # the stderr of this helper is the user's: one line, no traceback
        sys.stderr.write(f"error: exec failed: {_why(spec, e)}\n")
        sys.stderr.flush()
        return 126
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _enter_and_fork(spec: dict) -> int:
    """Join the container's cgroup and namespaces and fork the child that execs; its pid."""
    pid = spec["pid"]
    for d in spec.get("cgroup_dirs") or []:
        try:
            with open(f"{d}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass
    root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        k.enter_namespaces(pid, [n for n in NAMESPACES if n != "net" or spec.get("own_net", True)])
        if spec.get("seccomp_hex"):
            spec["seccomp"] = bytes.fromhex(spec["seccomp_hex"])
        child = os.fork()
        if child == 0:
            _child(spec, root_fd)
    finally:
        os.close(root_fd)
    return child


def _why(spec: dict, e: Exception) -> str:
    """What a failure to get into the container means to the person who ran exec."""
    if getattr(e, "errno", None) == errno.EAGAIN and (spec.get("pids_limit") or 0) > 0:
        return (f"the container is at its pids limit ({spec['pids_limit']} processes): no room"
                " for another; end some of its processes, or give it a higher --pids-limit")
    if getattr(e, "errno", None) in (errno.ENOENT, errno.ESRCH):
        return "the container has exited"
    return str(e)


def _child(spec: dict, root_fd: int) -> None:
    try:
        os.fchdir(root_fd)
        os.chroot(".")
        os.close(root_fd)
        proc = spec["process"]
        try:
            os.chdir(proc.get("cwd") or "/")
        except OSError:
            os.chdir("/")
        env = proc["env"]
        path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/bin:/bin")
        found = cinit.lookup(proc["argv"][0], path)
        if found is None or found.startswith("!"):
            what = "is not executable" if found else "executable file not found in $PATH"
            sys.stderr.write(f'error: exec: "{proc["argv"][0]}": {what}\n')
            sys.stderr.flush()
            os._exit(126 if found else 127)
        if spec.get("tty"):
            os.setsid()
            import fcntl
            fcntl.ioctl(0, cinit.TIOCSCTTY, 0)
        cinit.drop_privileges(spec["caps_mask"], bool(spec.get("privileged")), proc["uid"],
                              proc["gid"], proc.get("groups"), spec.get("no_new_privs", True),
                              spec.get("seccomp"))
        k.reset_signals()
        os.execve(found, proc["argv"], dict(e.split("=", 1) for e in env))
    except BaseException as e:  # noqa: BLE001
        try:
            sys.stderr.write(f"error: exec failed: {e}\n")
            sys.stderr.flush()
        finally:
            os._exit(126)


if __name__ == "__main__":
    sys.exit(main())

"""Run one command inside the sandbox (called by the sandbox process, see supervisor.py).

Each RUN gets a PID namespace of its own.  Its PID 1 is forked from the sandbox process: it
enters a mount namespace of its own, mounts /proc for that PID namespace, binds the prepared
/sys, /dev, /tmp, resolv.conf and hosts onto the overlay, masks and write-protects the same
/proc and /sys paths as a container (``runtime.start.rootfs.masks``), drops the bounding set to
Docker's default capabilities, pivots into the overlay, loads the containers' seccomp filter
(``runtime.security.seccomp``: no user namespaces, no mount, no keyring ...), switches user (root keeps
Docker's default capabilities, as under BuildKit) and execs ``tini-static`` (bound read-only
into the sandbox's /dev), which runs the command, reaps zombies and exits with its status;
the PID namespace dies with it, killing any stray background process.  Without a static tini
on the host a Python PID 1 does the same job (one more fork).

no_new_privs stays off, so setuid tools (``su``, package managers' sandboxing helpers) work
as under Docker.  Without it the kernel only lets a process holding CAP_SYS_ADMIN install a
seccomp filter: the filter is loaded while PID 1 is still root with its full effective set,
after pivot_root (which the filter refuses) and before the user switch and capability drop.

After pivot_root nothing can be imported, so everything used there is loaded up front.  Exec
failures come back through a close-on-exec pipe.
"""

from __future__ import annotations

import fcntl
import os
import signal
from dataclasses import dataclass

from minibox import kernel
from minibox.runtime.security import caps, seccomp
from minibox.runtime.start import rootfs

DEFAULT_CAPS = caps.mask_of(caps.DOCKER_DEFAULT)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_INITS = ("/usr/bin/tini-static", "/sbin/tini-static", "/usr/local/bin/tini-static")
INIT_NAME = ".minibox-init"          # where the init is bound, in the sandbox's /dev

_own_pidns: int | None = None
current_child = 0                     # the running step's PID 1 (for cancellation)


def host_init() -> str | None:
    """A static tini on the host, bound into each sandbox as its PID 1 (None: use Python)."""
    return next((p for p in HOST_INITS if os.access(p, os.X_OK)), None)


@dataclass
class ExecPlan:
    root: str                              # host path of the overlay mount
    proc: str                              # host path of the image's /proc mount point
    binds: list[tuple[str, str, bool]]     # (source, target under root, recursive)
    init: str | None                       # the init inside the image, or None
    argv: list[str]
    env: dict[str, str]
    cwd: str                               # inside the image
    uid: int
    gid: int
    groups: tuple[int, ...]


def prepare() -> bytes:
    """Compile the seccomp filter (cached per process): call it in the worker before forking
    the sandbox, so no block pays for it."""
    return seccomp.compile_filter()


def run(plan: ExecPlan, out_fd: int) -> tuple[int, str]:
    """Run ``plan``; return (exit code, exec error text or "").  Exit by signal -> 128+sig."""
    global current_child
    bpf = prepare()
    _fresh_pid_namespace_for_children()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])   # a cancel must see the pid
    try:
        pid = os.fork()
        if pid == 0:
            os.close(err_r)
            _pid1(plan, out_fd, err_w, bpf)        # never returns (unblocks before exec)
        current_child = pid
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    os.close(err_w)
    try:
        err = _read_all(err_r)
    finally:
        os.close(err_r)
    status = os.waitpid(pid, 0)[1]
    current_child = 0
    return _exit_code(status), err.decode("utf-8", "replace")


def _fresh_pid_namespace_for_children() -> None:
    """Make our next child PID 1 of a new PID namespace (setns resets an earlier unshare)."""
    global _own_pidns
    if _own_pidns is None:
        _own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    else:
        kernel.setns(_own_pidns, kernel.CLONE_NEWPID)
    kernel.unshare(kernel.CLONE_NEWPID)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 4096)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _pid1(plan: ExecPlan, out_fd: int, err_w: int, bpf: bytes) -> None:
    err = err_w
    try:
        kernel.set_pdeathsig(signal.SIGKILL)
        err = fcntl.fcntl(err_w, fcntl.F_DUPFD_CLOEXEC, 3)
        out = fcntl.fcntl(out_fd, fcntl.F_DUPFD_CLOEXEC, 3)
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        os.setsid()
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        kernel.unshare(kernel.CLONE_NEWNS)
        kernel.mount("proc", plan.proc, "proc", rootfs.NSND)
        for src, dst, rec in plan.binds:
            kernel.bind_mount(src, dst, recursive=rec)
        rootfs.apply(plan.root, rootfs.masks(plan.root))
        keep = DEFAULT_CAPS & kernel.capget()[1]
        kernel.drop_bounding_caps(keep)
        kernel.clear_ambient_caps()
        kernel.pivot_into(plan.root)
        # --- from here on nothing can be imported ---------------------------------------
        os.chdir(plan.cwd)
        kernel.seccomp_load(bpf)                   # needs CAP_SYS_ADMIN: no_new_privs is off
        os.setgroups(list(plan.groups))
        os.setgid(plan.gid)
        os.setuid(plan.uid)
        if plan.uid == 0:
            kernel.capset(keep, keep, 0)
        kernel.set_pdeathsig(signal.SIGKILL)       # a uid change cleared it
        os.umask(0o022)
        kernel.reset_signals()
        os.closerange(3, err)
        os.closerange(err + 1, 1 << 20)
        if plan.init:
            os.execve(plan.init, [INIT_NAME, "-p", "SIGKILL", "--"] + plan.argv, plan.env)
        _python_init(plan, err)
    except BaseException as e:  # noqa: BLE001 - everything must end in _exit
        try:
            os.write(err, _describe(e).encode("utf-8", "replace"))
        finally:
            os._exit(127)


def _python_init(plan: ExecPlan, err: int) -> None:
    """PID 1 without tini: fork the command, reap every child until it exits."""
    kernel.set_process_name("minibox-init")
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(_which(plan.argv[0], plan.env.get("PATH", DEFAULT_PATH)), plan.argv,
                      plan.env)
        except BaseException as e:  # noqa: BLE001
            os.write(err, _describe(e).encode("utf-8", "replace"))
        os._exit(127)
    os.close(err)
    while True:
        try:
            wpid, status = os.wait()
        except InterruptedError:
            continue
        if wpid == pid:
            os._exit(_exit_code(status))


def _which(name: str, search_path: str) -> str:
    """execvp's PATH search without imports (os.execvpe imports lazily)."""
    if "/" in name:
        return name
    for d in search_path.split(":"):
        cand = (d or ".").rstrip("/") + "/" + name
        if os.access(cand, os.X_OK) and not os.path.isdir(cand):
            return cand
    raise FileNotFoundError(2, f"{name}: not found in PATH ({search_path})")


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__

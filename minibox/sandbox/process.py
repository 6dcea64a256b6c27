"""Run one command inside the sandbox (called by the sandbox process, see supervisor.py).

Each RUN gets a PID namespace of its own.  Its PID 1 is the compiled ``minimon --pid1``
(runtime/start/mbpid1.c, built into the data root by ``minimon.path``), posix_spawned by the
sandbox (vfork: no copy of a Python process, no copy-on-write faults) with a plan decided
here (``_encode``); without it (no C compiler, MINIBOX_PYTHON_MONITOR, a noexec or absent
data root, no tini on the host) PID 1 is forked from the sandbox process (``_pid1``).
Either way it enters a mount namespace of its own, mounts /proc for that PID namespace,
binds the prepared /sys, /dev, /tmp, resolv.conf and hosts onto the overlay, masks and
write-protects the same /proc and /sys paths as a container
(``runtime.start.rootfs.masks``), drops the bounding set to Docker's default capabilities,
pivots into the overlay, loads the containers' seccomp filter (``runtime.security.seccomp``:
no user namespaces, no mount, no keyring ...), switches user (root keeps Docker's default
capabilities, as under BuildKit) and execs ``tini-static`` (bound read-only into the
sandbox's /dev), which runs the command, reaps zombies and exits with its status;
the PID namespace dies with it, killing any stray background process.  Without a static tini
on the host a Python PID 1 does the same job (one more fork).

no_new_privs stays off, so setuid tools (``su``, package managers' sandboxing helpers) work
as under Docker.  Without it the kernel only lets a process holding CAP_SYS_ADMIN install a
seccomp filter: the filter is loaded while PID 1 is still root with its full effective set,
after pivot_root (which the filter refuses) and before the user switch and capability drop.

After pivot_root nothing can be imported, so everything used there is loaded up front.  Exec
failures come back through a close-on-exec pipe (the compiled PID 1 writes "<code> <text>").
"""

from __future__ import annotations

import fcntl
import os
import signal
from dataclasses import dataclass

from minibox import kernel
from minibox.errors import KernelError
from minibox.runtime.security import caps, seccomp
from minibox.runtime.start import rootfs

DEFAULT_CAPS = caps.mask_of(caps.DOCKER_DEFAULT)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_INITS = ("/usr/bin/tini-static", "/sbin/tini-static", "/usr/local/bin/tini-static")
INIT_NAME = ".minibox-init"          # where the init is bound, in the sandbox's /dev

_own_pidns: int | None = None
current_child = 0                     # the running step's PID 1 (for cancellation)
_compiled: list = []                  # [path of minimon or None, the seccomp filter in hex]


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
    """Compile the seccomp filter and find (or build) the compiled PID 1, once per process:
    call it in the worker or the zygote before the sandboxes start, so no block pays for
    it (and nothing is compiled inside a sandbox)."""
    bpf = seccomp.compile_filter()
    if not _compiled:
        _compiled[:] = [_compiled_pid1(), bpf.hex()]
    return bpf


def _compiled_pid1() -> str | None:
    """``minimon`` from the data root (None: the Python PID 1).  A data root that does not
    exist (a sandbox run outside a daemon's farm) gets nothing made in it."""
    from minibox.config import process_settings
    from minibox.runtime.start import minimon
    root = process_settings().data_root
    return minimon.path(root) if root.is_dir() else None


def run(plan: ExecPlan, out_fd: int) -> tuple[int, str]:
    """Run ``plan``; return (exit code, exec error text or "").  Exit by signal -> 128+sig."""
    bpf = prepare()
    spec = None
    if _compiled[0] and plan.init:
        try:
            spec = _encode(plan, _compiled[1])
        except ValueError as e:         # what os.execve says of them in the forked PID 1
            return 127, str(e)
    _fresh_pid_namespace_for_children()
    try:
        status, err = _start(plan, spec, out_fd, bpf)
    finally:
        # our next child is ours again, not one in the step's dead namespace (a zygote forks)
        kernel.setns(_own_pidns, kernel.CLONE_NEWPID)
    if spec and err:
        err = err.partition(b" ")[2]    # "<code> <text>"
    return _exit_code(status), err.decode("utf-8", "replace")


def _start(plan: ExecPlan, spec: bytes | None, out_fd: int, bpf: bytes) -> tuple[int, bytes]:
    """PID 1, spawned or forked; its wait status and what it wrote to the error pipe."""
    global current_child
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])   # a cancel must see the pid
        try:
            pid = _spawn(spec, out_fd, err_w) if spec else None
            if pid is None:
                pid = _fork(plan, out_fd, err_r, err_w, bpf)
            current_child = pid
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        os.close(err_w)
        err_w = -1
        err = _read_all(err_r)
    finally:
        for fd in (err_r, err_w):
            if fd >= 0:
                os.close(fd)
    status = os.waitpid(pid, 0)[1]
    current_child = 0
    return status, err


def _fork(plan: ExecPlan, out_fd: int, err_r: int, err_w: int, bpf: bytes) -> int:
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        _pid1(plan, out_fd, err_w, bpf)        # never returns (unblocks before exec)
    return pid


def _spawn(spec: bytes, out_fd: int, err_w: int) -> int | None:
    """``minimon --pid1`` (mbpid1.c) as the new PID namespace's PID 1: the plan on fd 3,
    stdout and stderr the output pipe, the error pipe on fd 4 (it opens /dev/null on 0).
    None if it cannot be started (its data root cleaned away?): the Python PID 1 from then
    on, in a fresh namespace (a failed exec may have used this one's PID 1)."""
    from minibox.runtime.start import minimon
    try:
        return minimon.spawn(_compiled[0], "--pid1", spec,
                             [(out_fd, 1), (out_fd, 2), (err_w, 4)], devnull=())
    except KernelError:
        _compiled[0] = None
        _fresh_pid_namespace_for_children()
        return None


def _fs_steps(plan: ExecPlan) -> list[tuple]:
    """/proc, the binds and the masks, as ``rootfs`` steps (both PID 1s run them)."""
    out = [rootfs.op("M", plan.proc, src="proc", fstype="proc", flags=rootfs.NSND)]
    out += [rootfs.op("B", dst, src=src, flags=kernel.MS_REC if rec else 0)
            for src, dst, rec in plan.binds]
    return out + rootfs.masks(plan.root)


def _encode(plan: ExecPlan, seccomp_hex: str) -> bytes:
    """The compiled PID 1's plan: NUL-terminated tokens in the order of mbpid1.c's parse.
    ValueError for what execve could not take (a NUL byte, a "=" in a variable's name)."""
    ops = _fs_steps(plan) + [rootfs.op("V", plan.root)]
    argv = [INIT_NAME, "-p", "SIGKILL", "--", *plan.argv]
    if any(not key or "=" in key[1:] for key in plan.env):
        raise ValueError("illegal environment variable name")
    tokens = ["MBP1", plan.root, len(ops), *(x for o in ops for x in o), plan.cwd, plan.init,
              len(argv), *argv, len(plan.env), *(f"{k}={v}" for k, v in plan.env.items()),
              plan.uid, plan.gid, len(plan.groups), *plan.groups, DEFAULT_CAPS, seccomp_hex,
              "END"]
    text = "\0".join(t if isinstance(t, str) else str(int(t)) for t in tokens) + "\0"
    if text.count("\0") != len(tokens):
        raise ValueError("embedded null byte")
    return os.fsencode(text)


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
        rootfs.apply(plan.root, _fs_steps(plan))
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

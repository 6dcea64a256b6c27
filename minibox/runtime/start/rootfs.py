"""The container's filesystem, built inside its own mount namespace by its init process.

``steps`` decides it, in the worker: a list of steps (mount, bind, mknod, ... see
``op``) in this order: overlay rootfs (refused if its /proc, /dev or /sys is a symlink),
volumes, /proc, /dev, /dev/init, /sys, the per-container /etc files, the working dir,
masked and read-only paths, pivot_root, sysctls.
The compiled init (mbinit.c) executes them, or, without a compiler, the Python init
(``apply``).  They run in the container child (PID 1 of the new PID namespace), before
pivot_root with the host's / still visible; nothing is mounted in the host's namespace, so
a dead container leaks no mount.

A step's target is used as is (join ""), or resolved inside the rootfs with every symlink
kept inside it (``minibox.rootpath.resolve``, so a symlink in the image can never point a mount at a
host path): join "n" resolves only, "d" makes the missing directories, "f" makes the last
component a file.  ``fail``: "e" the start fails, "r" remove the target and go on (an
optional mount), "a" the next step is the alternative (run only if this one failed), "i"
ignore.
"""

from __future__ import annotations

import os
import stat

from minibox import kernel as k
from minibox import overlay, rootpath
from minibox.wire.runtime import StartPlan

MASKED_FILES = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                "/proc/latency_stats", "/proc/timer_stats", "/proc/sysrq-trigger")
MASKED_DIRS = ("/proc/scsi", "/proc/acpi", "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys")
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("ptmx", "pts/ptmx"))
NSND = k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC       # nosuid, nodev, noexec
INIT_PATH = "/dev/init"      # tini, bind-mounted read-only (the runc /proc/self/exe attack)
OP_FIELDS = ("code", "src", "target", "join", "fstype", "data", "flags", "mode", "fail")


def clone_flags(plan: StartPlan) -> int:
    """The namespaces the container's init is cloned into (its own network unless host, or
    unless it joins one made beforehand, ``plan.netns``: a bridge network's)."""
    flags = k.CLONE_NEWNS | k.CLONE_NEWPID | k.CLONE_NEWUTS | k.CLONE_NEWIPC
    own = plan.network != "host" and not plan.netns
    return flags | (k.CLONE_NEWNET if own else 0)


def op(code: str, target: str = "", *, src: str = "", join: str = "", fstype: str = "",
       data: str = "", flags: int = 0, mode: int = 0, fail: str = "e") -> tuple:
    return (code, src, target, join, fstype, data, flags, mode, fail)


def steps(plan: StartPlan, tini_path: str | None) -> list[tuple]:
    """The container's filesystem as steps (see the top); ``tini_path``: what to bind on
    /dev/init (None: nothing)."""
    root = plan.rootfs
    # /proc, /dev and /sys get fresh mounts, and the paths below them (masks, /dev/null,
    # the /etc files' sources) are taken as root + path: an image where one of them is a
    # symlink would send those to where it points, maybe out of the rootfs (runc refuses a
    # symlinked /proc the same way)
    out = [op("P")] + _overlay(plan) + [op("X", root + d, data=d) for d in ("/proc", "/dev", "/sys")]
    out += _volumes(plan.mounts)
    out.append(op("M", "/proc", join="d", src="proc", fstype="proc", flags=NSND))
    out += _dev(plan, tini_path)
    sys_fail = "a" if plan.network == "host" else "e"
    out.append(op("M", "/sys", join="d", src="sysfs", fstype="sysfs", flags=NSND | k.MS_RDONLY,
                  fail=sys_fail))
    if plan.network == "host":
        out.append(op("B", "/sys", join="d", src="/sys", flags=k.MS_REC, mode=1))
    out += _etc_files(plan)
    out.append(op("J", plan.process.cwd or "/", join="d"))
    if not plan.privileged:
        out += masks(root)
    out.append(op("V", root))
    if plan.sysctls:
        out.append(op("D", "/dev/.sysctl", mode=0o700))
        out.append(op("M", "/dev/.sysctl", src="proc", fstype="proc", flags=NSND))
        out += [op("W", "/dev/.sysctl/sys/" + key.replace(".", "/"), data=value)
                for key, value in plan.sysctls.items()]
        out += [op("U", "/dev/.sysctl", flags=k.MNT_DETACH), op("R", "/dev/.sysctl")]
    return out


def _overlay(plan: StartPlan) -> list[tuple]:
    # relative to the data root (we chdir there): overlay's options must fit in one page, so
    # the lowers are named by their short links in DataRoot/l (minibox.overlay)
    base = plan.data_root
    data = overlay.options(os.path.join(base, "l"), plan.lowers,
                           os.path.relpath(plan.upper, base), os.path.relpath(plan.work, base))
    return [op("C", base), op("M", plan.rootfs, src="overlay", fstype="overlay", data=data),
            op("C", "/")]


def _volumes(mounts: list[dict]) -> list[tuple]:
    out = []
    for m in mounts:
        if m["kind"] == "tmpfs":
            out.append(op("M", m["target"], join="d", src="tmpfs", fstype="tmpfs",
                          flags=k.MS_NOSUID | k.MS_NODEV, data=m.get("options") or "mode=1777"))
            continue
        src = m["host_path"]
        out.append(op("B", m["target"], join="d" if os.path.isdir(src) else "f", src=src,
                      flags=k.MS_REC, mode=1 if m.get("readonly") else 0))
    return out


def _dev(plan: StartPlan, tini_path: str) -> list[tuple]:
    out = [op("M", "/dev", join="d", src="tmpfs", fstype="tmpfs",
              flags=k.MS_NOSUID | k.MS_STRICTATIME, data="mode=755,size=65536k")]
    out += [op("N", f"/dev/{name}", join="n", flags=os.makedev(major, minor), mode=0o666)
            for name, major, minor in DEVICES]
    out += [op("L", f"/dev/{name}", join="n", src=target) for name, target in DEV_LINKS]
    out += [op("D", f"/dev/{d}", join="n", mode=0o755) for d in ("pts", "shm", "mqueue")]
    out.append(op("M", "/dev/pts", join="n", src="devpts", fstype="devpts",
                  flags=k.MS_NOSUID | k.MS_NOEXEC, data="newinstance,ptmxmode=0666,mode=0620,gid=5"))
    out.append(op("M", "/dev/shm", join="n", src="shm", fstype="tmpfs", flags=NSND,
                  data=f"mode=1777,size={plan.shm_size}"))
    out.append(op("M", "/dev/mqueue", join="n", src="mqueue", fstype="mqueue", flags=NSND,
                  fail="r"))
    if plan.tty:
        out.append(op("F", "/dev/console", join="n", mode=0o600))
    if tini_path:
        # tini, read-only at /dev/init (in the /dev tmpfs, so nothing is written into the
        # image): PID 1's /proc/1/exe is then a read-only mount, and the host's binary can
        # never be opened for writing through it
        out.append(op("F", INIT_PATH, join="n", mode=0o755))
        out.append(op("B", INIT_PATH, join="n", src=tini_path,
                      flags=k.MS_NOSUID | k.MS_NODEV, mode=1))
    return out


def _etc_files(plan: StartPlan) -> list[tuple]:
    contents = plan.etc_files
    root = plan.rootfs
    out = []
    for name in ("hostname", "hosts", "resolv.conf"):
        if contents is None:      # a container made before the contents came in the plan
            out.append(op("E", f"/etc/{name}", join="f", src=os.path.join(plan.dir, name),
                          mode=1))
        else:
            out.append(op("E", f"/etc/{name}", join="f", src=f"{root}/dev/.{name}",
                          data=contents.get(name, "")))
    return out


def masks(root: str) -> list[tuple]:
    """The masked and read-only /proc and /sys paths, as steps for ``apply`` (containers and
    build RUN steps alike: both bind /dev/null and mount /proc and /sys under ``root``)."""
    out = [op("m", root + p, src=root + "/dev/null") for p in MASKED_FILES]
    out += [op("k", root + p, src="tmpfs", fstype="tmpfs", flags=k.MS_RDONLY | NSND, data="size=0")
            for p in MASKED_DIRS]
    out += [op("r", root + p, flags=k.MS_REC | NSND) for p in READONLY]
    return out


# --- the Python init's interpreter of the steps (mbinit.c run_ops is the compiled one) ---
_JOIN = {"n": None, "d": "dir", "f": "file"}


def apply(root: str, ops: list[tuple]) -> None:
    """Run ``steps`` here (in the container's init, before its exec)."""
    skip = False
    for code, src, target, join, fstype, data, flags, mode, fail in ops:
        if skip:
            skip = False
            continue
        try:
            tgt = rootpath.resolve(root, target, create=_JOIN[join]) if join else target
        except OSError as e:
            raise k.KernelError(f"{target} in the image: {e.strerror or e}") from None
        try:
            _do(code, src, tgt, fstype, data, flags, mode)
        except (OSError, k.KernelError) as e:
            if fail in ("a", "i"):
                continue
            if fail == "r":
                os.rmdir(tgt)
                continue
            if code == "X":
                raise
            why = os.strerror(e.errno) if getattr(e, "errno", None) else str(e)
            raise k.KernelError(f"{step_name(code)} {fstype or src} on "
                                f"{target if join else tgt}: {why}") from None
        skip = fail == "a"


def step_name(code: str) -> str:
    """What a step is called in an error (the container's path follows: mbinit.c says the
    same)."""
    if code in ("M", "k"):
        return "mount"
    if code in ("B", "m", "r", "E"):
        return "bind mount"
    return "pivot_root into" if code == "V" else "make"


def _do(code: str, src: str, tgt: str, fstype: str, data: str, flags: int, mode: int) -> None:
    if code == "P":
        k.make_private("/")
    elif code == "C":
        os.chdir(tgt)
    elif code in ("M", "k"):
        if code == "M" or os.path.isdir(tgt):
            k.mount(src or None, tgt, fstype, flags, data or None)
    elif code == "B":
        k.bind_mount(src, tgt, readonly=bool(mode), recursive=bool(flags & k.MS_REC),
                     flags=flags & ~k.MS_REC)
    elif code == "m":                       # mask a file: /dev/null over it
        if os.path.exists(tgt) and not os.path.isdir(tgt):
            k.bind_mount(src, tgt, recursive=False)
    elif code == "r":                       # read-only: bound onto itself, remounted
        if os.path.exists(tgt):
            k.bind_mount(tgt, tgt, readonly=True, recursive=True, flags=flags & ~k.MS_REC)
    elif code == "N":
        os.mknod(tgt, mode | stat.S_IFCHR, flags)
        os.chmod(tgt, mode)
    elif code == "L":
        os.symlink(src, tgt)
    elif code == "D":
        os.mkdir(tgt, mode)
    elif code == "F":
        os.close(os.open(tgt, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, mode))
    elif code == "E":
        _etc_file(src, tgt, data, legacy=mode == 1)
    elif code == "V":
        k.pivot_into(tgt)
    elif code == "W":
        with open(tgt, "w") as f:
            f.write(data)
    elif code == "U":
        k.umount(tgt, flags)
    elif code == "R":
        os.rmdir(tgt)
    elif code == "X":
        if os.path.islink(tgt):
            raise k.KernelError(f"the image's {data} is a symbolic link (it must be a directory, "
                                "or absent)")
    elif code != "J":
        raise OSError(f"unknown rootfs step {code!r}")


def _etc_file(src: str, tgt: str, content: str, legacy: bool) -> None:
    """/etc/NAME: the content written into the container's /dev tmpfs (``src``), bound over
    the image's file, unlinked there once mounted (the mount keeps it): nothing on disk.
    ``legacy``: a container made before the contents came in the plan has the file in its
    dir (``src``)."""
    if os.path.isdir(tgt):
        return
    if legacy:
        k.bind_mount(src, tgt, recursive=False)
        return
    fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, content.encode())
    finally:
        os.close(fd)
    try:
        k.bind_mount(src, tgt, recursive=False)
    finally:
        os.unlink(src)


def build(plan: StartPlan, tini_fd: int = -1) -> str:
    """Build the whole filesystem and pivot into it.  Returns the container cwd."""
    tini = os.readlink(f"/proc/self/fd/{tini_fd}") if tini_fd >= 0 else None
    apply(plan.rootfs, steps(plan, tini))
    return plan.process.cwd or "/"

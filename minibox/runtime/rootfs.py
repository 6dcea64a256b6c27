"""The container's filesystem, built inside its own mount namespace by its init process.

Everything here runs in the container child (PID 1 of the new PID namespace) *before*
pivot_root, with the host's / still visible; nothing is mounted in the host's namespace, so
a dead container leaks no mount.  Order: overlay rootfs, volumes, /proc, /dev, /sys, the
per-container /etc files, masked and read-only paths, then ``kernel.pivot_into``.
All paths under the rootfs go through ``secure_join`` so a symlink in the image can never
point a mount at a host path.
"""

from __future__ import annotations

import os
import stat

from minibox import kernel as k

MASKED_FILES = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                "/proc/latency_stats", "/proc/timer_stats", "/proc/sysrq-trigger")
MASKED_DIRS = ("/proc/scsi", "/proc/acpi", "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys")
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("ptmx", "pts/ptmx"))
NOSUID_NODEV_NOEXEC = k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC


def secure_join(root: str, path: str, create: str | None = None) -> str:
    """``root + path`` with every symlink resolved *inside* root.  ``create``: 'dir' or
    'file' makes the missing components (the last one of that kind)."""
    parts = [p for p in path.split("/") if p and p != "."]
    cur, hops = "", 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            cur = cur.rsplit("/", 1)[0]
            continue
        nxt = cur + "/" + p
        try:
            st = os.lstat(root + nxt)
        except FileNotFoundError:
            if create is None:
                return root + nxt + ("/" + "/".join(parts) if parts else "")
            if parts or create == "dir":
                os.mkdir(root + nxt, 0o755)
            else:
                os.close(os.open(root + nxt, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            cur = nxt
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise OSError(40, f"too many levels of symbolic links in {path}")
            target = os.readlink(root + nxt)
            if target.startswith("/"):
                cur = ""
            parts = [x for x in target.split("/") if x and x != "."] + parts
            continue
        cur = nxt
    return root + cur


def mount_overlay(plan: dict) -> str:
    """Mount the image layers + the container's upper dir on ``plan['rootfs']``.

    Paths are given relative to the data root (we chdir there) to keep the option string
    short: overlay's options must fit in one page."""
    os.chdir(plan["data_root"])
    rel = [os.path.relpath(p) if p.startswith(plan["data_root"] + "/") else p
           for p in plan["lowers"]]
    data = (f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(plan['upper'])},"
            f"workdir={os.path.relpath(plan['work'])}")
    k.mount("overlay", plan["rootfs"], "overlay", 0, data)
    os.chdir("/")
    return plan["rootfs"]


def mount_volumes(root: str, mounts: list[dict]) -> None:
    for m in mounts:
        if m["kind"] == "tmpfs":
            target = secure_join(root, m["target"], "dir")
            k.mount("tmpfs", target, "tmpfs", k.MS_NOSUID | k.MS_NODEV,
                    m.get("options") or "mode=1777")
            continue
        src = m["host_path"]
        target = secure_join(root, m["target"], "dir" if os.path.isdir(src) else "file")
        k.bind_mount(src, target, readonly=m.get("readonly", False), recursive=True)


def mount_proc(root: str) -> None:
    target = secure_join(root, "/proc", "dir")
    k.mount("proc", target, "proc", NOSUID_NODEV_NOEXEC)


def mount_dev(root: str, plan: dict) -> None:
    dev = secure_join(root, "/dev", "dir")
    k.mount("tmpfs", dev, "tmpfs", k.MS_NOSUID | k.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(f"{dev}/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)
    for name, target in DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    for d in ("pts", "shm", "mqueue"):
        os.mkdir(f"{dev}/{d}", 0o755)
    k.mount("devpts", f"{dev}/pts", "devpts", k.MS_NOSUID | k.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5")
    k.mount("shm", f"{dev}/shm", "tmpfs", NOSUID_NODEV_NOEXEC,
            f"mode=1777,size={plan['shm_size']}")
    try:
        k.mount("mqueue", f"{dev}/mqueue", "mqueue", NOSUID_NODEV_NOEXEC)
    except k.KernelError:
        os.rmdir(f"{dev}/mqueue")
    if plan.get("tty"):
        # the mount point of the console, which the init makes after pivot_root from a
        # PTY of the devpts above (init._console)
        os.close(os.open(f"{dev}/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))


INIT_PATH = "/dev/init"


def mount_init(root: str, tini_fd: int) -> None:
    """tini-static, bind-mounted read-only at /dev/init (in the container's /dev tmpfs, so
    nothing is written into the image).  PID 1 is exec'd from this path: its
    /proc/1/exe is then a read-only mount, and the host's binary can never be opened for
    writing through it (the runc /proc/self/exe attack)."""
    target = root + INIT_PATH
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))
    # by path: the fd's mount belongs to the host's mount namespace, and a bind from
    # another namespace's mount is EINVAL; our namespace is a copy, so the path is the same
    source = os.readlink(f"/proc/self/fd/{tini_fd}")
    k.bind_mount(source, target, readonly=True, recursive=False,
                 flags=k.MS_NOSUID | k.MS_NODEV)


def mount_sys(root: str, host_net: bool) -> None:
    target = secure_join(root, "/sys", "dir")
    flags = NOSUID_NODEV_NOEXEC | k.MS_RDONLY
    try:
        k.mount("sysfs", target, "sysfs", flags)
    except k.KernelError:
        if not host_net:
            raise
        k.bind_mount("/sys", target, readonly=True)


def bind_etc_files(root: str, plan: dict) -> None:
    """Bind /etc/hostname, /etc/hosts and /etc/resolv.conf over the image's.  The files are
    written into the container's /dev tmpfs and unlinked there once mounted (the mount
    keeps them): nothing on disk, nothing extra in /dev.  Containers made before the
    contents came in the plan have them in their directory."""
    contents = plan.get("etc_files")
    for name in ("hostname", "hosts", "resolv.conf"):
        target = secure_join(root, f"/etc/{name}", "file")
        if os.path.isdir(target):
            continue
        if contents is None:
            k.bind_mount(os.path.join(plan["dir"], name), target, recursive=False)
            continue
        src = f"{root}/dev/.{name}"
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, contents.get(name, "").encode())
        finally:
            os.close(fd)
        try:
            k.bind_mount(src, target, recursive=False)
        finally:
            os.unlink(src)


def mask_paths(root: str) -> None:
    null = root + "/dev/null"
    for path in MASKED_FILES:
        target = root + path
        if os.path.exists(target) and not os.path.isdir(target):
            k.bind_mount(null, target, recursive=False)
    for path in MASKED_DIRS:
        target = root + path
        if os.path.isdir(target):
            k.mount("tmpfs", target, "tmpfs", k.MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0")
    for path in READONLY:
        target = root + path
        if os.path.exists(target):
            k.bind_mount(target, target, readonly=True, recursive=True,
                         flags=NOSUID_NODEV_NOEXEC)


def build(plan: dict, tini_fd: int = -1) -> str:
    """Build the whole filesystem and pivot into it.  Returns the container cwd."""
    k.make_private("/")
    root = mount_overlay(plan)
    mount_volumes(root, plan["mounts"])
    mount_proc(root)
    mount_dev(root, plan)
    if tini_fd >= 0:
        mount_init(root, tini_fd)
    mount_sys(root, plan["network"] == "host")
    bind_etc_files(root, plan)
    cwd = plan["process"]["cwd"] or "/"
    secure_join(root, cwd, "dir")
    if not plan.get("privileged"):
        mask_paths(root)
    k.pivot_into(root)
    if plan["sysctls"]:
        _sysctls_writable(plan["sysctls"])
    return cwd


def _sysctls_writable(sysctls: dict) -> None:
    # /proc/sys is read-only now; write through a private, writable proc mount
    os.mkdir("/dev/.sysctl", 0o700)
    try:
        k.mount("proc", "/dev/.sysctl", "proc", NOSUID_NODEV_NOEXEC)
        for key, value in sysctls.items():
            with open("/dev/.sysctl/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        k.umount("/dev/.sysctl", k.MNT_DETACH)
    finally:
        os.rmdir("/dev/.sysctl")

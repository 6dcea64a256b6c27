"""The sandbox's mounts, all made inside its private mount namespace.

- a tmpfs on ``<scratch_dir>/sandbox`` holding every mount point and generated file below
  (fast to make, and gone with the namespace: nothing is left on disk to clean up);
- the block's overlay, written through by COPY and by RUN, its lower dirs named by short
  links in the tmpfs (``minibox.overlay``: 128 layers and more fit in one mount).  Under
  the image's layers sits a bottom "stub" layer (in the tmpfs) with empty /proc, /sys, /dev,
  /tmp, /etc/resolv.conf and /etc/hosts: the image's own entries win, and where the image
  lacks one the mount point exists without anything being written to the upper dir.  The overlay is ``volatile``: its
  unmount does not sync the whole upper filesystem (the caller's commit reads the upper dir
  and makes the layer durable itself);
- a "sysroot" prepared once per block in scratch: a read-only /sys, a /dev tmpfs with device
  nodes, devpts, shm and the init (tini-static, bound read-only), a /tmp tmpfs, and private
  copies of resolv.conf and hosts.  Each RUN mounts its own /proc and binds these onto the
  root in its own mount namespace (process.py), so COPY steps never see them and they never
  reach the upper dir;
- read-only views of other blocks for COPY FROM.

Where a mount point still has to be created in the root (e.g. a /etc/resolv.conf symlink to a
missing file, or an entry hidden by a whiteout) the stub is recorded and removed in
``finish`` if it is still empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from minibox import kernel, overlay
from minibox.errors import BuildFailed, KernelError
from minibox.hostsfile import hosts_text
from minibox.sandbox import process, rootfs

_OVERLAY_EXTRA = "index=off,redirect_dir=off,metacopy=off"
_STUB_DIRS = (("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("etc", 0o755))
_STUB_FILES = ("etc/resolv.conf", "etc/hosts")
_DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
              ("urandom", 1, 9), ("tty", 5, 0))
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
              ("ptmx", "pts/ptmx"))
# (path in the image, "dir"|"file", name in the sysroot, recursive bind)
_RUN_TARGETS = (("/sys", "dir", "sys", False),
                ("/dev", "dir", "dev", True), ("/tmp", "dir", "tmp", False),
                ("/etc/resolv.conf", "file", "resolv.conf", False),
                ("/etc/hosts", "file", "hosts", False))


class Mounts:
    def __init__(self, spec):
        self.spec = spec
        self.base = os.path.join(spec.scratch_dir, "sandbox")
        self.root = os.path.join(self.base, "root")
        self.links = os.path.join(self.base, "l")     # short names of the lower dirs
        self.stubs: list[str] = []
        self.copied_up: list[str] = []     # image paths of dirs a stub made overlay copy up
        self._sysroot: str | None = None
        self.init: str | None = None        # the init's path inside the image, once bound
        self._from: dict[str, str] = {}

    # --- the block's overlay -----------------------------------------------------------
    def mount_root(self) -> None:
        os.makedirs(self.base, exist_ok=True)
        kernel.mount("tmpfs", self.base, "tmpfs", kernel.MS_NOSUID | kernel.MS_NODEV,
                     "mode=700,size=16m")
        os.mkdir(self.root)
        stub_layer = os.path.join(self.base, "stubs")
        _make_stub_layer(stub_layer)
        _match_root_dir(self.spec.upper_dir, (self.spec.lower_dirs or [stub_layer])[0])
        _clear_volatile_marker(self.spec.work_dir)
        mount_overlay(self.root, self.spec.lower_dirs + [stub_layer], self.links,
                      self.spec.upper_dir, self.spec.work_dir)

    def finish(self) -> None:
        """Remove still-empty mount stubs (through the overlay), then unmount it.

        Once unmounted, the upper dir may be edited directly: parent dirs that overlay copied
        up only because a stub was created in them are dropped again if they are still empty
        and unchanged.
        """
        for path in reversed(self.stubs):
            _remove_if_empty(path)
        self.stubs.clear()
        try:
            kernel.umount(self.root)
        except KernelError as e:
            if e.errno != errno.EBUSY:
                raise
            kernel.umount(self.root, kernel.MNT_DETACH)
            return
        for path in sorted(set(self.copied_up), key=len, reverse=True):
            _drop_copy_up(self.spec.upper_dir, self.spec.lower_dirs, path)
        self.copied_up.clear()

    # --- COPY FROM views ---------------------------------------------------------------
    def from_root(self, block: str) -> str:
        """A read-only mount of ``block``'s merged view (its lower dirs, top-most first)."""
        if block in self._from:
            return self._from[block]
        target = os.path.join(self.base, "from", str(len(self._from)))
        os.makedirs(target, exist_ok=True)
        dirs = self.spec.copy_from[block]
        if not dirs:
            pass                                   # an empty dir is an empty block
        elif len(dirs) == 1:
            kernel.bind_mount(dirs[0], target, readonly=True, recursive=False)
        else:
            mount_overlay(target, dirs, self.links, readonly=True)
        self._from[block] = target
        return target

    # --- what a RUN binds ----------------------------------------------------------------
    def run_binds(self) -> tuple[str, list[tuple[str, str, bool]]]:
        """The /proc mount point and the (source, target, recursive) binds for one RUN;
        creates stubs where needed."""
        sysroot = self._ensure_sysroot()
        binds = []
        for path, kind, name, rec in _RUN_TARGETS:
            binds.append((os.path.join(sysroot, name), self._stub(path, kind), rec))
        return self._stub("/proc", "dir"), binds

    def _stub(self, path: str, kind: str) -> str:
        host = rootfs.resolve(self.root, path)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return self._make_stub(host, kind)
        if (kind == "dir") != stat.S_ISDIR(st.st_mode):
            want = "a directory" if kind == "dir" else "a file"
            raise BuildFailed(f"the image's {path} is not {want}; the build sandbox mounts "
                              f"its own {path} there")
        return host

    def _make_stub(self, host: str, kind: str) -> str:
        parent = os.path.dirname(host)
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        rel = rootfs.inside(self.root, parent)
        if rel != "/" and not os.path.lexists(self.spec.upper_dir + rel):
            self.copied_up.append(rel)
        rootfs.mkdir_p(self.root, rootfs.inside(self.root, os.path.dirname(host)),
                       created=self.stubs)
        if kind == "dir":
            os.mkdir(host, 0o755)
        else:
            os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o644))
        self.stubs.append(host)
        return host

    def _ensure_sysroot(self) -> str:
        if self._sysroot is None:
            sysroot = os.path.join(self.base, "sys")
            for name in ("sys", "dev", "tmp"):
                os.makedirs(os.path.join(sysroot, name), exist_ok=True)
            kernel.mount("sysfs", os.path.join(sysroot, "sys"), "sysfs",
                         kernel.MS_RDONLY | kernel.MS_NOSUID | kernel.MS_NODEV
                         | kernel.MS_NOEXEC)
            self.init = _mount_dev(os.path.join(sysroot, "dev"), process.host_init())
            kernel.mount("tmpfs", os.path.join(sysroot, "tmp"), "tmpfs",
                         kernel.MS_NOSUID | kernel.MS_NODEV, "mode=1777")
            _write(os.path.join(sysroot, "resolv.conf"), _resolv_text(self.spec.network))
            _write(os.path.join(sysroot, "hosts"),
                   hosts_text(self.spec.hostname, host_network=self.spec.network == "host"))
            self._sysroot = sysroot
        return self._sysroot


def mount_overlay(target: str, lowers: list[str], links_dir: str, upper: str | None = None,
                  work: str | None = None, readonly: bool = False) -> None:
    """Mount an overlay: volatile (with an upper) and export-safe (index, redirect_dir and
    metacopy off); kernels that refuse an option get the mount without it.  Every dir is
    named by a short link in ``links_dir`` (``minibox.overlay``), so 128 lowers and more fit
    whatever the data root's path."""
    if upper:
        upper, work = overlay.link(links_dir, upper), overlay.link(links_dir, work)
    opts = overlay.options(links_dir, lowers, upper, work)
    flags = kernel.MS_RDONLY if readonly else 0
    attempts = [f"{opts},{_OVERLAY_EXTRA}", opts]
    if upper:
        attempts.insert(0, f"{opts},{_OVERLAY_EXTRA},volatile")
    old = os.getcwd()
    os.chdir(os.path.dirname(links_dir))
    try:
        for i, data in enumerate(attempts):
            try:
                kernel.mount("overlay", target, "overlay", flags, data)
                return
            except KernelError as e:
                if e.errno != errno.EINVAL or i == len(attempts) - 1:
                    raise
    finally:
        os.chdir(old)


def _make_stub_layer(path: str) -> None:
    os.mkdir(path, 0o755)
    for name, mode in _STUB_DIRS:
        os.mkdir(os.path.join(path, name))
        os.chmod(os.path.join(path, name), mode)
    for name in _STUB_FILES:
        os.close(os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT, 0o644))


def _clear_volatile_marker(work_dir: str) -> None:
    """A cleanly unmounted volatile overlay leaves work/incompat/volatile, which refuses the
    next mount of the same work dir (overlayfs.rst: delete it to remount)."""
    marker = os.path.join(work_dir, "work", "incompat", "volatile")
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(marker):
            os.unlink(os.path.join(marker, name))
        os.rmdir(marker)


def _match_root_dir(upper: str, lower: str) -> None:
    """The merged root takes the upper dir's mode and owner: give it the image's."""
    want, have = os.stat(lower), os.stat(upper)
    if (want.st_uid, want.st_gid) != (have.st_uid, have.st_gid):
        os.chown(upper, want.st_uid, want.st_gid)
    if stat.S_IMODE(want.st_mode) != stat.S_IMODE(have.st_mode):
        os.chmod(upper, stat.S_IMODE(want.st_mode))


def _overlay_opts(lowers: list[str], upper: str | None, work: str | None) -> str:
    opts = "lowerdir=" + ":".join(lowers)
    if upper:
        opts += f",upperdir={upper},workdir={work}"
    return opts


def _mount_dev(target: str, init: str | None) -> str | None:
    """Fill a /dev tmpfs; bind ``init`` (a host binary) read-only into it; its image path."""
    kernel.mount("tmpfs", target, "tmpfs", kernel.MS_NOSUID | kernel.MS_STRICTATIME,
                 "mode=755,size=65536k")
    for name, major, minor in _DEV_NODES:
        p = os.path.join(target, name)
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(p, 0o666)
    for name in ("pts", "shm"):
        os.mkdir(os.path.join(target, name), 0o755)
    kernel.mount("devpts", os.path.join(target, "pts"), "devpts",
                 kernel.MS_NOSUID | kernel.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    kernel.mount("shm", os.path.join(target, "shm"), "tmpfs",
                 kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC, "mode=1777,size=65536k")
    for name, dest in _DEV_LINKS:
        os.symlink(dest, os.path.join(target, name))
    if init is None:
        return None
    p = os.path.join(target, process.INIT_NAME)
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755))
    kernel.bind_mount(init, p, readonly=True, recursive=False)
    return "/dev/" + process.INIT_NAME


def _remove_if_empty(path: str) -> None:
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            if not os.listdir(path):
                os.rmdir(path)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
    except OSError:
        pass                                       # gone or in use: a user change, keep it


def _drop_copy_up(upper: str, lowers: list[str], path: str) -> None:
    """Remove ``path`` and its ancestors from ``upper`` while they are empty, not opaque and
    have the mode and owner of the topmost lower's copy (i.e. carry no change)."""
    while path not in ("/", ""):
        up = upper + path
        try:
            st = os.lstat(up)
            if not stat.S_ISDIR(st.st_mode) or os.listdir(up) or _opaque(up):
                return
            low = next((os.lstat(d + path) for d in lowers if os.path.lexists(d + path)), None)
            if low is None or (low.st_mode, low.st_uid, low.st_gid) != (
                    st.st_mode, st.st_uid, st.st_gid):
                return
            os.rmdir(up)
        except OSError:
            return
        path = os.path.dirname(path)


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _host_text(path: str, default: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def _resolv_text(network: str) -> str:
    """The host's resolvers; in the build network's namespace, loopback ones replaced."""
    if network == "build":
        from minibox.net import resolv

        return resolv.for_namespace()
    return _host_text("/etc/resolv.conf", "")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

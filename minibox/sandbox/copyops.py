"""COPY with Docker semantics, written through the block's merged overlay mount.

- a relative dest resolves against the step's WORKDIR; a dest ending in ``/`` (or ``.``), or
  several sources, or a glob, makes the dest a directory;
- a directory source copies its CONTENTS; a file source to an existing directory goes inside;
- parents are created 0755 root:root; dest symlinks are followed only inside the image root;
- mode (with setuid/setgid/sticky), symlinks (not followed), hardlinks within one COPY,
  xattrs and mtimes are kept; ownership is root:root from the context, kept for COPY FROM.
"""

from __future__ import annotations

import os
import stat

from minibox.errors import BuildFailed
from minibox.sandbox import rootfs
from minibox.sandbox.sources import Source, has_glob

_SKIP_XATTR_PREFIXES = ("trusted.", "security.selinux")


class _Copier:
    def __init__(self, root: str, keep_owner: bool, line: int):
        self.root = root
        self.keep_owner = keep_owner
        self.line = line
        self.links: dict[tuple[int, int], str] = {}

    # --- top level -----------------------------------------------------------------------
    def copy(self, src: Source, dest: str, as_dir: bool) -> None:
        st = os.stat(src.path)
        if stat.S_ISDIR(st.st_mode):
            self.tree(src.path, self._mkdir_p(dest))
            return
        if as_dir:
            target = os.path.join(self._mkdir_p(dest), src.name)
        else:
            self._mkdir_p(os.path.dirname(dest.rstrip("/")) or "/")
            target = rootfs.resolve(self.root, dest)
            if os.path.isdir(target):
                target = os.path.join(target, src.name)
        self.entry(src.path, st, target)

    def tree(self, src_dir: str, dst_dir: str) -> None:
        with os.scandir(src_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            dst = os.path.join(dst_dir, e.name)
            if stat.S_ISDIR(st.st_mode):
                real, new = self._dir_for(dst)
                self.tree(e.path, real)
                if new or real == dst:
                    self._meta(real, st, e.path)
            else:
                self.entry(e.path, st, dst)

    # --- entries -------------------------------------------------------------------------
    def entry(self, src: str, st: os.stat_result, dst: str) -> None:
        """Copy one non-directory (``st`` is the stat of what is copied)."""
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        self._clear(dst)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], dst)
            return
        if stat.S_ISREG(mode):
            _copy_file(src, dst)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        else:
            os.mknod(dst, mode, st.st_rdev)
        self._meta(dst, st, src)
        if st.st_nlink > 1:
            self.links[key] = dst

    def _dir_for(self, dst: str) -> tuple[str, bool]:
        """The directory to merge a source dir into at ``dst``: (host path, newly made)."""
        try:
            st = os.lstat(dst)
        except FileNotFoundError:
            os.mkdir(dst, 0o700)
            return dst, True
        if stat.S_ISDIR(st.st_mode):
            return dst, False
        if stat.S_ISLNK(st.st_mode):
            real = rootfs.resolve(self.root, rootfs.inside(self.root, dst))
            if os.path.isdir(real):
                return real, False
        os.unlink(dst)
        os.mkdir(dst, 0o700)
        return dst, True

    def _clear(self, dst: str) -> None:
        try:
            st = os.lstat(dst)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise BuildFailed(f"COPY at line {self.line}: cannot replace the directory "
                              f"{rootfs.inside(self.root, dst)} with a file")
        os.unlink(dst)

    def _meta(self, dst: str, st: os.stat_result, src: str) -> None:
        uid, gid = (st.st_uid, st.st_gid) if self.keep_owner else (0, 0)
        os.chown(dst, uid, gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            _copy_xattrs(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _mkdir_p(self, path: str) -> str:
        try:
            return rootfs.mkdir_p(self.root, path)
        except OSError as e:
            raise BuildFailed(f"COPY at line {self.line}: cannot create {path}: "
                              f"{e.strerror or e}") from None


def copy_sources(root: str, sources: list[Source], patterns: list[str], dest: str,
                 workdir: str, keep_owner: bool, line: int) -> None:
    """Copy resolved ``sources`` (from ``patterns``) to ``dest`` inside ``root``."""
    path = dest if dest.startswith("/") else os.path.join(workdir or "/", dest)
    as_dir = (dest.endswith("/") or os.path.basename(dest) in (".", "..") or len(sources) > 1
              or any(has_glob(p) for p in patterns))
    copier = _Copier(root, keep_owner, line)
    for src in sources:
        try:
            copier.copy(src, os.path.normpath(path), as_dir)
        except BuildFailed:
            raise
        except OSError as e:
            name = str(e.filename or "")
            where = rootfs.inside(root, name) if name.startswith(root) else name or src.name
            raise BuildFailed(f"COPY at line {line}: {where}: {e.strerror or e}") from None


def _copy_file(src: str, dst: str) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
        try:
            size = os.fstat(fin).st_size
            off = 0
            while True:
                n = os.sendfile(fout, fin, off, max(size - off, 1 << 20))
                if n == 0:
                    break
                off += n
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_SKIP_XATTR_PREFIXES):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            pass                                   # not supported on the overlay: skip

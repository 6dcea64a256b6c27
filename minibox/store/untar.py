"""Extracting a layer tar into an overlay-format directory, safely.

* Names are checked first: absolute paths and ``..`` are refused with a UserError naming the
  entry; so are hardlinks whose target would leave the layer.
* Every write goes through directory file descriptors opened with ``O_NOFOLLOW``, so a
  symlink planted by an earlier entry is never followed (an entry below a symlink is refused).
* OCI whiteouts become overlay whiteouts: ``.wh.NAME`` -> a 0:0 character device ``NAME``,
  ``.wh..wh..opq`` -> ``trusted.overlay.opaque=y`` on the directory.
* Mode (setuid/setgid/sticky included), numeric owner, mtime, xattrs, devices, FIFOs,
  symlinks and hardlinks are kept.  Directory mtimes are set last, deepest first.
* Only the entry types the image spec lists (files, dirs, symlinks, hard links, char and
  block devices, FIFOs), and never a 0:0 character device: the spec marks deletions with
  ``.wh.`` names, and a raw overlay whiteout would hide lower files unannounced.
* Limits (``Limits``; env ``MINIBOX_LAYER_MAX_SIZE``, ``MINIBOX_LAYER_MAX_RATIO``,
  ``MINIBOX_LAYER_MAX_ENTRIES``) stop tar bombs: too many uncompressed bytes or entries, or
  a compression ratio no real layer has.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat
import tarfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from minibox.errors import UserError

OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_FD_CACHE_MAX = 64


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
RATIO_GRACE = 64 << 20        # ratios are judged only past this many uncompressed bytes


@dataclass(frozen=True)
class Limits:
    """What one layer may unpack to.  The defaults fit any real image; raise them through
    the daemon's environment for a layer that needs more."""

    max_size: int = 64 << 30          # uncompressed tar bytes
    max_ratio: int = 200              # uncompressed / compressed bytes
    max_entries: int = 2_000_000

    @classmethod
    def from_env(cls, env=None) -> "Limits":
        env = os.environ if env is None else env
        return cls(max_size=_size(env, "MINIBOX_LAYER_MAX_SIZE", cls.max_size),
                   max_ratio=_size(env, "MINIBOX_LAYER_MAX_RATIO", cls.max_ratio),
                   max_entries=_size(env, "MINIBOX_LAYER_MAX_ENTRIES", cls.max_entries))

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_size:
            raise UserError(f"{what} unpacks to more than {_human(self.max_size)}; refused "
                            f"as a possible tar bomb",
                            hint="if the layer is genuine, raise MINIBOX_LAYER_MAX_SIZE in "
                                 "the daemon's environment")

    def check_ratio(self, size: int, compressed: int, what: str) -> None:
        if size > RATIO_GRACE and size > self.max_ratio * max(compressed, 1):
            raise UserError(f"{what} expands more than {self.max_ratio}:1 when "
                            f"decompressed; refused as a possible compression bomb",
                            hint="if the layer is genuine, raise MINIBOX_LAYER_MAX_RATIO in "
                                 "the daemon's environment")

    def check_entries(self, count: int, what: str) -> None:
        if count > self.max_entries:
            raise UserError(f"{what} has more than {self.max_entries} entries; refused",
                            hint="raise MINIBOX_LAYER_MAX_ENTRIES in the daemon's "
                                 "environment if it is genuine")


def _size(env, key: str, default: int) -> int:
    text = (env.get(key) or "").strip().lower().removesuffix("b").removesuffix("i")
    if not text:
        return default
    unit = text[-1] if text[-1] in _UNITS else ""
    number = text[:-1] if unit else text
    if not number.isdigit() or int(number) <= 0:
        raise UserError(f"invalid {key} '{env.get(key)}'",
                        hint="a positive number, optionally with k, m, g or t")
    return int(number) * _UNITS[unit]


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}"
        n //= 1024
    return f"{n} TiB"


def entry_parts(name: str, what: str = "entry") -> tuple[bytes, ...]:
    """The path components of a tar name; UserError if it could leave the layer."""
    raw = os.fsencode(name)
    if raw.startswith(b"/"):
        raise UserError(f"layer {what} {name!r} has an absolute path",
                        hint="layer tars use names relative to the root, like usr/bin/sh")
    parts = tuple(p for p in raw.split(b"/") if p not in (b"", b"."))
    if b".." in parts:
        raise UserError(f"layer {what} {name!r} contains '..' and would escape the layer")
    return parts


class LayerExtractor:
    """Applies the members of one tar stream to ``dest`` (a directory we own)."""

    def __init__(self, dest: Path, limits: Limits | None = None):
        self._limits = limits or Limits()
        self._root_fd = os.open(dest, _DIR_OPEN)
        self._fds: dict[tuple[bytes, ...], int] = {}
        self._retired: list[int] = []     # dropped from the cache, maybe still in use
        self._dir_times: dict[tuple[bytes, ...], int] = {}

    def close(self) -> None:
        self._drop_fd_cache()
        self._close_retired()
        os.close(self._root_fd)

    def extract_all(self, tar: tarfile.TarFile) -> int:
        os.fchmod(self._root_fd, 0o755)
        count = 0
        for member in tar:
            count += 1
            self._limits.check_entries(count, "the layer")
            self._member(tar, member)
            self._close_retired()
        self._apply_dir_times()
        return count

    # -- one member -------------------------------------------------------------------
    def _member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = entry_parts(m.name)
        if not parts:
            if m.isdir():
                self._set_meta(self._root_fd, m)
                self._dir_times[()] = _mtime_ns(m)
            return
        parent = self._parent_fd(parts[:-1], m.name)
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, m.name)
        elif m.isdir():
            self._directory(parent, parts, m)
        elif m.isreg():
            self._regular(tar, parent, base, m)
        elif m.issym():
            self._create(parent, base, lambda: os.symlink(m.linkname, base, dir_fd=parent))
            self._set_link_meta(parent, base, m)
        elif m.islnk():
            self._hardlink(parent, base, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            check_device(m)
            self._special(parent, base, m)
        # anything else (GNU volume labels, unknown types) carries no file: skip it

    def _whiteout(self, parent: int, base: bytes, name: str) -> None:
        if base == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return                                   # aufs metadata (.wh..wh.plnk ...)
        target = base[len(WHITEOUT_PREFIX):]
        if target in (b"", b".", b".."):
            raise UserError(f"layer entry {name!r} is a malformed whiteout")
        self._create(parent, target,
                     lambda: os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent))

    def _directory(self, parent: int, parts: tuple[bytes, ...], m: tarfile.TarInfo) -> None:
        base = parts[-1]
        try:
            os.mkdir(base, 0o700, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=parent).st_mode):
                self._remove(parent, base)
                os.mkdir(base, 0o700, dir_fd=parent)
        fd = os.open(base, _DIR_OPEN, dir_fd=parent)
        try:
            self._set_meta(fd, m)
        finally:
            os.close(fd)
        self._dir_times[parts] = _mtime_ns(m)

    def _regular(self, tar: tarfile.TarFile, parent: int, base: bytes,
                 m: tarfile.TarInfo) -> None:
        fd = self._create(parent, base, lambda: os.open(base, _FILE_CREATE, 0o600,
                                                        dir_fd=parent))
        try:
            source = tar.extractfile(m)
            if source is not None:
                _copy_into(source, fd)
            self._set_meta(fd, m)
            os.utime(fd, ns=(_mtime_ns(m), _mtime_ns(m)))
        finally:
            os.close(fd)

    def _hardlink(self, parent: int, base: bytes, m: tarfile.TarInfo) -> None:
        target = entry_parts(m.linkname, "hardlink target")
        if not target:
            raise UserError(f"layer entry {m.name!r} is a hardlink to the layer root")
        try:
            tparent = self._parent_fd(target[:-1], m.linkname, create=False)
            os.lstat(target[-1], dir_fd=tparent)
        except FileNotFoundError:
            raise UserError(f"layer entry {m.name!r} is a hardlink to {m.linkname!r}, which "
                            f"is not earlier in the layer") from None
        self._create(parent, base, lambda: os.link(target[-1], base, src_dir_fd=tparent,
                                                   dst_dir_fd=parent, follow_symlinks=False))

    def _special(self, parent: int, base: bytes, m: tarfile.TarInfo) -> None:
        if m.isfifo():
            make = lambda: os.mkfifo(base, 0o600, dir_fd=parent)  # noqa: E731
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            make = lambda: os.mknod(base, kind | 0o600,  # noqa: E731
                                    os.makedev(m.devmajor, m.devminor), dir_fd=parent)
        self._create(parent, base, make)
        os.chown(base, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(base, m.mode & 0o7777, dir_fd=parent)
        self._set_xattrs(f"/proc/self/fd/{parent}/{os.fsdecode(base)}", m)
        os.utime(base, ns=(_mtime_ns(m), _mtime_ns(m)), dir_fd=parent, follow_symlinks=False)

    # -- helpers ----------------------------------------------------------------------
    def _create(self, parent: int, base: bytes, make):
        """Run ``make``; if the name is taken, remove what is there and run it again."""
        try:
            return make()
        except FileExistsError:
            self._remove(parent, base)
            return make()

    def _remove(self, parent: int, base: bytes) -> None:
        if stat.S_ISDIR(os.lstat(base, dir_fd=parent).st_mode):
            self._drop_fd_cache()                    # cached fds may point inside it
            shutil.rmtree(os.fsdecode(base), dir_fd=parent)
        else:
            os.unlink(base, dir_fd=parent)

    def _set_meta(self, fd: int, m: tarfile.TarInfo) -> None:
        os.fchown(fd, m.uid, m.gid)                  # before chmod: chown clears setuid
        os.fchmod(fd, m.mode & 0o7777)
        self._set_xattrs(fd, m)                      # after chown: it drops capabilities

    def _set_link_meta(self, parent: int, base: bytes, m: tarfile.TarInfo) -> None:
        os.chown(base, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
        self._set_xattrs(f"/proc/self/fd/{parent}/{os.fsdecode(base)}", m, follow=False)
        os.utime(base, ns=(_mtime_ns(m), _mtime_ns(m)), dir_fd=parent, follow_symlinks=False)

    @staticmethod
    def _set_xattrs(target: int | str, m: tarfile.TarInfo, follow: bool = True) -> None:
        for name, value in tar_xattrs(m).items():
            if name.startswith("trusted.overlay."):
                continue                             # only whiteouts may say what is opaque
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as e:
                # user.* xattrs are refused on symlinks (EPERM); some filesystems lack a
                # namespace (ENOTSUP).  Neither is worth failing a layer for.
                if e.errno in (errno.EINVAL, errno.ERANGE, errno.E2BIG):
                    raise UserError(  # a malformed value (a bad security.capability ...)
                        f"layer entry {m.name!r} has a {name} xattr the kernel refuses "
                        f"({e.strerror})", hint="the image was made with a malformed value; "
                        "fix or remove it where the image is made (e.g. setcap -r)") from None
                if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP) and (
                        follow or e.errno != errno.EPERM):
                    raise

    def _parent_fd(self, parts: tuple[bytes, ...], name: str, create: bool = True) -> int:
        """An fd of directory ``parts`` (creating missing ones), never through a symlink."""
        if not parts:
            return self._root_fd
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        up = self._parent_fd(parts[:-1], name, create)
        try:
            fd = os.open(parts[-1], _DIR_OPEN, dir_fd=up)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(parts[-1], 0o755, dir_fd=up)
            fd = os.open(parts[-1], _DIR_OPEN, dir_fd=up)
            os.fchmod(fd, 0o755)                     # an implied parent: 0755 whatever umask
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                where = os.fsdecode(b"/".join(parts))
                raise UserError(f"layer entry {name!r} lies under {where!r}, which is not a "
                                f"directory (a symlink is never followed)") from None
            raise
        if len(self._fds) >= _FD_CACHE_MAX:
            self._drop_fd_cache()
        self._fds[parts] = fd
        return fd

    def _drop_fd_cache(self) -> None:
        """Forget cached fds; they are closed once the current member is done with them."""
        self._retired.extend(self._fds.values())
        self._fds.clear()

    def _close_retired(self) -> None:
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def _apply_dir_times(self) -> None:
        self._drop_fd_cache()
        for parts in sorted(self._dir_times, key=len, reverse=True):
            ns = self._dir_times[parts]
            if not parts:
                os.utime(self._root_fd, ns=(ns, ns))
                continue
            try:
                parent = self._parent_fd(parts[:-1], "", create=False)
                os.utime(parts[-1], ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
            except (FileNotFoundError, UserError):
                pass                                 # replaced by a later entry
            self._close_retired()
        self._drop_fd_cache()
        self._close_retired()


def check_device(m: tarfile.TarInfo) -> None:
    if m.ischr() and m.devmajor == 0 and m.devminor == 0:
        raise UserError(f"layer entry {m.name!r} is a 0:0 character device (a raw overlay "
                        f"whiteout)", hint="image layers mark deletions with .wh. files")


def tar_xattrs(m: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes recorded in a member's PAX header (SCHILY and LIBARCHIVE forms)."""
    out: dict[str, bytes] = {}
    for key, value in m.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            out[name] = base64.b64decode(value + "=" * (-len(value) % 4))
    return out


def _copy_into(source, fd: int) -> None:
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        n = source.readinto(buf)
        if not n:
            return
        done = 0
        while done < n:
            done += os.write(fd, view[done:n])


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return int(m.mtime * 1_000_000_000)

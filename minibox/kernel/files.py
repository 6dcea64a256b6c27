"""Filesystems and inodes: syncfs, ext4's top-directory flag."""

from __future__ import annotations

import ctypes
import os

from minibox.kernel.libc import fail as _fail, libc as _libc

_libc.syncfs.argtypes = [ctypes.c_int]


def syncfs(path: str) -> None:
    """Flush the filesystem that holds ``path`` (not every filesystem, as sync(2) does)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            _fail(f"syncfs({path})")
    finally:
        os.close(fd)


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

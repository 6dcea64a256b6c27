"""Filesystems and inodes: syncfs, early writeback, ext4's top-directory flag."""

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


_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, nbytes: int) -> bool:
    """Start writing ``nbytes`` of ``fd``'s dirty pages from ``offset`` to the disk, without
    waiting for them (sync_file_range(SYNC_FILE_RANGE_WRITE)): a later fsync then has little
    left to wait for.  Only a hint, never durability: False where the file system cannot."""
    return _libc.sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE) == 0


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

"""Mounts: mount, bind mounts, umount, and pivoting into a new root (linux/mount.h)."""

from __future__ import annotations

import ctypes
import os
import platform

from minibox.kernel.libc import fail as _fail, fsbytes as _b, libc as _libc

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine(), 155)

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        _fail(f"mount {fstype or ''} {source or ''} on {target} (flags={flags:#x}, "
              f"data={data!r})")


def bind_mount(source: str, target: str, *, readonly: bool = False, recursive: bool = True,
               flags: int = 0) -> None:
    """Bind ``source`` onto ``target``; a read-only bind needs a second remount call."""
    base = MS_BIND | (MS_REC if recursive else 0)
    mount(source, target, None, base | flags)
    if readonly:
        mount(None, target, None, base | MS_REMOUNT | MS_RDONLY | flags)


def make_private(target: str = "/") -> None:
    """Stop mount events propagating back to the host (run first in a new mount ns)."""
    mount(None, target, None, MS_REC | MS_PRIVATE)


def umount(target: str, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        _fail(f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)) != 0:
        _fail(f"pivot_root({new_root}, {put_old})")


def pivot_into(new_root: str) -> None:
    """Make ``new_root`` (a mount point) the root of this mount namespace, dropping the old.

    Uses the pivot_root(".", ".") idiom, so no directory for the old root has to be made
    inside the new root (nothing leaks into an image layer).
    """
    os.chdir(new_root)
    pivot_root(".", ".")
    umount(".", MNT_DETACH)
    os.chdir("/")

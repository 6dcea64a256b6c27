"""posix_spawn(3) with the GIL released."""

from __future__ import annotations

import ctypes
import os

from minibox.errors import KernelError
from minibox.kernel.libc import libc as _libc

POSIX_SPAWN_SETSID = 0x80          # glibc's value
_SPAWN_BUF = 512                   # > sizeof(posix_spawn_file_actions_t), posix_spawnattr_t
for _name in ("posix_spawn_file_actions_init", "posix_spawn_file_actions_destroy",
              "posix_spawnattr_init", "posix_spawnattr_destroy"):
    getattr(_libc, _name).argtypes = [ctypes.c_void_p]
_libc.posix_spawn_file_actions_adddup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_libc.posix_spawn_file_actions_addopen.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                                   ctypes.c_int, ctypes.c_uint]
_libc.posix_spawnattr_setflags.argtypes = [ctypes.c_void_p, ctypes.c_short]
_libc.posix_spawn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]


def posix_spawn(path: str, argv: list[str], dup2: list[tuple[int, int]], *,
                devnull: tuple[int, ...] = (0, 1, 2), setsid: bool = False) -> int:
    """posix_spawn(3) with an empty environment; returns the child's pid.

    Unlike ``os.posix_spawn`` (which holds the GIL while the vfork'd child execs, stalling
    every other thread of the runtime worker), the call runs with the GIL released.
    ``devnull``: fds opened on /dev/null first; ``dup2``: (source, target) pairs, in order
    (sources must not be among the targets); ``setsid``: the child starts a new session."""
    fa = ctypes.create_string_buffer(_SPAWN_BUF)
    attr = ctypes.create_string_buffer(_SPAWN_BUF)
    _libc.posix_spawn_file_actions_init(fa)
    _libc.posix_spawnattr_init(attr)
    try:
        for fd in devnull:
            _libc.posix_spawn_file_actions_addopen(fa, fd, b"/dev/null", os.O_RDWR, 0)
        for src, dst in dup2:
            _libc.posix_spawn_file_actions_adddup2(fa, src, dst)
        if setsid:
            _libc.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID)
        args = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
        env = (ctypes.c_char_p * 1)(None)
        pid = ctypes.c_int(0)
        err = _libc.posix_spawn(ctypes.byref(pid), os.fsencode(path), fa, attr, args, env)
        if err:
            raise KernelError(f"posix_spawn {path}: {os.strerror(err)}", errno=err)
        return pid.value
    finally:
        _libc.posix_spawn_file_actions_destroy(fa)
        _libc.posix_spawnattr_destroy(attr)

"""The C library, loaded once for every module of minibox.kernel, and the two helpers
each wrapper uses: ``fail`` (raise KernelError with the call and the errno's text) and
``fsbytes`` (a path or None as the bytes libc takes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from minibox.errors import KernelError

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long


def fail(what: str, hint: str | None = None) -> None:
    err = ctypes.get_errno()
    raise KernelError(f"{what}: {os.strerror(err)}", errno=err, hint=hint)


def fsbytes(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)

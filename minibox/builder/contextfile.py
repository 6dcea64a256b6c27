"""Reading one file of a build context on the daemon's machine (the MiniBox file, the
ignore file, a BASE archive) without ever leaving the context: a symlink is followed only
while it stays inside, and nothing but a regular file is opened.  Stdlib only (the CLI
imports this through ``context`` and ``ignore``)."""

from __future__ import annotations

import os
import stat

from minibox.errors import UserError


def read_context_file(context_dir: str, name: str, what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``name`` (relative) of the context.  Symlinks are
    followed only while they stay inside the context; one that leaves it, or a device,
    FIFO, socket or directory, is refused without being opened.  UserError names ``what``
    (e.g. "the MiniBox file") and never where a link leads.  FileNotFoundError when there
    is no such entry, for the caller to word."""
    shown = printable(name[:200])
    if name.startswith("/") or ".." in name.split("/"):
        raise UserError(f"{what} '{shown}' must be a relative path inside the build context")
    root = os.path.realpath(context_dir)
    full = os.path.join(root, name)
    os.lstat(full)                                      # FileNotFoundError: no such entry
    real = os.path.realpath(full)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise UserError(f"{what} '{shown}' is a symlink that leads outside the build context",
                        hint="a build reads only files inside its context")
    try:
        st = os.stat(real)
    except OSError:
        raise UserError(f"{what} '{shown}' is a broken symlink") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} '{shown}' is not a regular file (a directory, device, FIFO "
                        "or socket)")
    if st.st_size > max_bytes:
        raise UserError(f"{what} '{shown}' is larger than {size_text(max_bytes)}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with open(os.open(real, flags), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UserError(f"{what} '{shown}' is not a regular file")
        return f.read(max_bytes)


def printable(text: str) -> str:
    """``text`` with control characters escaped (names from a client go into messages)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"

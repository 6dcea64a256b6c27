"""Replacing a file's content: the one way MiniBox does it, with one durability rule.

The rule: the new content goes to a temp file beside the target (or in ``tmp_dir``, on the
same filesystem), is written in full, fsync'd and given its mode (``prepare`` may do more,
e.g. give it a group), then renamed over the target, and the directory is fsync'd.  So
readers, and a crash of any process at any moment, see the old file or the new one, never
part of either; and once the call returns, the new one survives a power loss too.  A
failure leaves the old file and no temp file behind.

One exception, taken by name where it is taken: ``durable=False`` skips both fsyncs (still
atomic).  For files on a container's start path, which ``runtime.state.sync_later`` makes
durable a moment later, and for files whose loss at a power failure is harmless (a cache
entry, the record of processes a power loss kills anyway).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["fsync_dir", "write_file", "write_json"]


def write_file(path, data: bytes | str, *, mode: int = 0o644, durable: bool = True,
               tmp_dir=None, prepare: Callable[[Path], None] | None = None) -> None:
    """Replace ``path``'s content with ``data`` (see the rule above)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    # unique per process and thread: concurrent writers of one path never share a temp file
    name = f".{path.name}.{os.getpid()}-{threading.get_native_id()}.tmp"
    tmp = Path(tmp_dir) / name if tmp_dir is not None else path.with_name(name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)         # whatever the umask took away
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if prepare is not None:
            prepare(tmp)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def write_json(path, obj, *, mode: int = 0o644, durable: bool = True, indent=None) -> None:
    """``write_file`` of ``obj`` as JSON: sorted keys, compact unless ``indent`` (the C
    encoder; an indent means json's pure-Python one, ~10x slower)."""
    text = json.dumps(obj, sort_keys=True, indent=indent,
                      separators=None if indent is not None else (",", ":"))
    write_file(path, text, mode=mode, durable=durable)


def fsync_dir(path) -> None:
    """Make a directory's entries (a rename, a new file) survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""overlayfs mount options with short lower-dir names, as Docker's overlay2 driver makes them.

An overlay mount gets its lower dirs in one option string, and the kernel copies mount data
into one page (4 KiB): with layer paths like ``/var/lib/minibox/layers/<64 hex>`` only about
55 layers fit.  overlay2 gives every layer a symlink ``l/<26 chars>`` and mounts from the
directory that holds ``l/``; the kernel follows the links when it resolves the option's
paths, so the mounted overlay is the same.  Here a layer's link name is derived from its
path (base32 of a hash), so links need no bookkeeping: the same dir always gets the same
name, and making a link that exists is a no-op.

``options(links_dir, lowers, upper, work)`` makes the links and returns the option string,
relative to ``dirname(links_dir)``: the caller mounts with that as its working directory.
At least 128 image layers fit (plus a stub or init layer, and upper/work paths of up to
about 100 characters each); more is refused with a clear error.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading

from minibox.errors import UserError

LINK_CHARS = 26             # overlay2's length
MAX_LAYERS = 128            # what a build may stack (overlay2's limit too)
PAGE = 4096                 # the mount data page; the string needs its NUL


def link_name(target: str) -> str:
    """The short name of ``target``'s link: 26 base32 characters of a hash of its path."""
    digest = hashlib.blake2b(os.fsencode(target), digest_size=20).digest()
    return base64.b32encode(digest).decode()[:LINK_CHARS]


def link(links_dir: str, target: str) -> str:
    """Make ``links_dir/<name>`` point at ``target``; its relative path from ``links_dir``'s
    parent, e.g. ``l/4XG...``.  One readlink when the link is there already (a few µs)."""
    name = link_name(target)
    path = os.path.join(links_dir, name)
    try:
        current = os.readlink(path)
    except (FileNotFoundError, NotADirectoryError):
        current = None
    if current != target:
        os.makedirs(links_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}-{threading.get_native_id()}.tmp"
        try:
            os.symlink(target, tmp)
            os.replace(tmp, path)                   # atomic; racing makers write the same
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    return os.path.join(os.path.basename(links_dir), name)


def options(links_dir: str, lowers: list[str], upper: str | None = None,
            work: str | None = None) -> str:
    """``lowerdir=l/A:l/B...[,upperdir=U,workdir=W]``, lowers top-most first; ``upper`` and
    ``work`` are used as given (absolute, or relative to ``links_dir``'s parent)."""
    data = "lowerdir=" + ":".join(link(links_dir, d) for d in lowers)
    if upper:
        data += f",upperdir={upper},workdir={work}"
    if len(data) >= PAGE:
        raise UserError(f"{len(lowers)} layers do not fit in one overlay mount "
                        f"(its options would take {len(data)} bytes; the kernel takes "
                        f"{PAGE - 1})", hint=f"stack at most {MAX_LAYERS} layers")
    return data

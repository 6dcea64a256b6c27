"""A path inside a root directory (an image, a container's rootfs), resolved the way a
process chrooted there would see it: the one safe join.

``resolve(root, "/app/x")`` follows every symlink *relative to root*: an absolute link
target restarts at root and ``..`` never climbs above it, so a symlink ``/app -> /etc`` in
an image lands in the image's /etc, never the host's.  Components that do not exist are
kept as they are (``create`` makes them).  The result is always ``root`` or below it.

Used by the build's sandbox (COPY, USER, package lists) and by the container's Python init
(every mount target; mbinit.c does the same in C).  The caller makes sure nothing else
changes the tree meanwhile (the sandbox's previous RUN is dead; the init is alone).
"""

from __future__ import annotations

import os
import stat

__all__ = ["MAX_SYMLINKS", "RootPathError", "inside", "resolve"]

MAX_SYMLINKS = 40


class RootPathError(OSError):
    """A path inside the root cannot be resolved or created (loop, a file in the way)."""


def resolve(root: str, path: str, *, follow_final: bool = True,
            create: str | None = None) -> str:
    """The host path of ``path`` inside ``root``.  ``follow_final=False``: a symlink as the
    last component is not followed.  ``create``: make what is missing, directories (0755)
    and, with "file", the last component as an empty file (0644); "dir" makes it a
    directory."""
    root = root.rstrip("/") or "/"
    todo = list(reversed(path.split("/")))
    done: list[str] = []
    links = 0
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if done:
                done.pop()
            continue
        host = _join(root, done + [comp])
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            done.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode) and (todo or follow_final):
            links += 1
            if links > MAX_SYMLINKS:
                raise RootPathError(f"too many levels of symbolic links in {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            todo.extend(reversed(target.split("/")))
            continue
        done.append(comp)
    if create is not None:
        _create(root, done, create)
    return _join(root, done)


def inside(root: str, host_path: str) -> str:
    """The in-root path ("/a/b") of a host path under ``root``."""
    root = root.rstrip("/")
    rel = host_path[len(root):] if host_path.startswith(root) else host_path
    return "/" + rel.strip("/")


def _create(root: str, parts: list[str], kind: str) -> None:
    for i in range(len(parts)):
        host = _join(root, parts[:i + 1])
        if os.path.lexists(host):
            continue
        if i < len(parts) - 1 or kind == "dir":
            os.mkdir(host, 0o755)
        else:
            os.close(os.open(host, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _join(root: str, parts: list[str]) -> str:
    if not parts:
        return root
    return (root if root != "/" else "") + "/" + "/".join(parts)

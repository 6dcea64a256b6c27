"""Paths inside an image root, resolved the way a chrooted process would see them.

``resolve(root, "/app/x")`` follows every symlink *relative to root* (an absolute link target
restarts at root, ``..`` never climbs above it), so a symlink ``/app -> /etc`` in the image lands
in the image's /etc, never the host's.  Nothing runs in the sandbox while Python works on the
tree (the previous RUN's processes are all dead), so resolving and then acting is race-free.
"""

from __future__ import annotations

import os
import stat

MAX_SYMLINKS = 40


class RootPathError(OSError):
    """A path inside the root cannot be resolved or created (loop, a file in the way)."""


def resolve(root: str, path: str, *, follow_final: bool = True) -> str:
    """The host path of ``path`` inside ``root``; components that do not exist are kept."""
    root = root.rstrip("/") or "/"
    todo = [c for c in reversed(path.split("/"))]
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
    return _join(root, done)


def inside(root: str, host_path: str) -> str:
    """The in-image path ("/a/b") of a host path under ``root``."""
    root = root.rstrip("/")
    rel = host_path[len(root):] if host_path.startswith(root) else host_path
    return "/" + rel.strip("/")


def mkdir_p(root: str, path: str, *, mode: int = 0o755, created: list | None = None) -> str:
    """``mkdir -p`` inside ``root`` (new dirs ``mode``, owned root:root); returns the host path.

    ``created`` (if given) collects every directory this call made, parents first.
    """
    target = resolve(root, path)
    base = root.rstrip("/")
    cur = base
    for comp in target[len(base):].split("/"):
        if not comp:
            continue
        cur = f"{cur}/{comp}"
        try:
            os.mkdir(cur, mode)
        except FileExistsError:
            st = os.lstat(cur)
            if not stat.S_ISDIR(st.st_mode):
                raise RootPathError(f"{inside(root, cur)} exists and is not a directory")
            continue
        os.chown(cur, 0, 0)
        os.chmod(cur, mode)
        if created is not None:
            created.append(cur)
    return target


def lexists(root: str, path: str) -> bool:
    try:
        os.lstat(resolve(root, path))
        return True
    except (OSError, RootPathError):
        return False


def is_file(root: str, path: str) -> bool:
    """True if ``path`` is (a symlink, inside root, to) a regular file."""
    try:
        return stat.S_ISREG(os.stat(resolve(root, path)).st_mode)
    except OSError:
        return False


def find_executable(root: str, name: str, search_path: str) -> str | None:
    """The in-image path of ``name`` found on ``search_path`` (like execvp), or None."""
    if "/" in name:
        return name if _is_exec(root, name) else None
    for d in search_path.split(":"):
        cand = f"{d or '.'}/{name}" if d != "/" else f"/{name}"
        if _is_exec(root, cand):
            return cand
    return None


def _is_exec(root: str, path: str) -> bool:
    try:
        st = os.stat(resolve(root, path))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _join(root: str, parts: list[str]) -> str:
    if not parts:
        return root
    return (root if root != "/" else "") + "/" + "/".join(parts)

"""Paths inside an image root, resolved the way a chrooted process would see them.

``resolve(root, "/app/x")`` (minibox.rootpath, the one safe join) follows every symlink
*relative to root* (an absolute link target restarts at root, ``..`` never climbs above it),
so a symlink ``/app -> /etc`` in the image lands in the image's /etc, never the host's.
Nothing runs in the sandbox while Python works on the
tree (the previous RUN's processes are all dead), so resolving and then acting is race-free.
"""

from __future__ import annotations

import os
import stat

from minibox.rootpath import MAX_SYMLINKS, RootPathError, inside, resolve

__all__ = ["MAX_SYMLINKS", "RootPathError", "find_executable", "inside", "is_file", "lexists",
           "mkdir_p", "resolve"]


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

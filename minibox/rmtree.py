"""Removing a directory tree of any depth.

``shutil.rmtree`` on Python 3.11 recurses once per directory level: a tree some 1,000
levels deep (a build context, a RUN step's ``mkdir -p``, a container's writes to a volume)
makes it raise RecursionError, even with ``ignore_errors=True``, and leaves the tree behind.
``remove_tree`` walks iteratively, relative to directory descriptors (so the depth is not
bounded by PATH_MAX either), never follows a symlink, and holds two descriptors at a time:
it climbs back through ``..`` and checks that it arrives where it came from.
"""

from __future__ import annotations

import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path, *, ignore_errors: bool = False) -> None:
    """Remove ``path`` and everything below it; a missing path is no error.  A symlink is
    removed, never followed.  OSError on failure unless ``ignore_errors``."""
    try:
        _remove(os.fspath(path))
    except OSError:
        if not ignore_errors:
            raise


def remove_known(path, files: tuple[str, ...], dirs: tuple[str, ...]) -> None:
    """Remove ``path``, a directory expected to hold just ``files`` and ``dirs`` (relative
    paths; each directory after everything below it): an unlink or rmdir each, not a walk.
    Anything else in it, or a call that fails, leaves the rest to ``remove_tree``, which
    removes whatever is there; errors are ignored, as with ``ignore_errors``."""
    path = os.fspath(path)
    try:
        for rel in files:
            os.unlink(os.path.join(path, rel))
        for rel in dirs:
            os.rmdir(os.path.join(path, rel))
        os.rmdir(path)
    except OSError:
        remove_tree(path, ignore_errors=True)


def _remove(path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    _empty(os.open(path, _DIR_FLAGS))
    os.rmdir(path)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _clear(fd: int) -> list[str]:
    """Unlink the directory's non-directories; return its subdirectories' names."""
    subdirs = []
    with os.scandir(fd) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                _unlink(entry.name, fd)
    return subdirs


def _unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _empty(fd: int) -> None:
    """Empty the directory open at ``fd``, depth first; closes ``fd``."""
    walk = _Walk(fd)
    try:
        walk.run()
    finally:
        os.close(walk.fd)


class _Walk:
    """Depth first from one directory descriptor, holding one at a time (``self.fd``)."""

    def __init__(self, fd: int):
        self.fd = fd

    def run(self) -> None:
        # one entry per directory entered: (its name in its parent, its identity, the
        # names of its subdirectories not yet removed)
        stack = [("", _ident(self.fd), _clear(self.fd))]
        while True:
            name, _, pending = stack[-1]
            if pending:
                child = self._enter(pending.pop())
                if child is not None:
                    stack.append(child)
                continue
            stack.pop()
            if not stack:
                return
            self._climb(stack[-1][1])
            os.rmdir(name, dir_fd=self.fd)

    def _enter(self, name: str):
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            _unlink(name, self.fd)       # replaced by a link or a file meanwhile
            return None
        os.close(self.fd)
        self.fd = child
        return name, _ident(child), _clear(child)

    def _climb(self, expected: tuple[int, int]) -> None:
        parent = os.open("..", _DIR_FLAGS, dir_fd=self.fd)
        if _ident(parent) != expected:
            os.close(parent)
            raise OSError(errno.ESTALE, "a directory was moved while its tree was removed")
        os.close(self.fd)
        self.fd = parent

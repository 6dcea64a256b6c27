"""COPY source resolution: globs and escape checks.

Context sources go through ``minibox.builder.context.resolve_sources``, the same function the
daemon hashed them with for the cache key.  ``from_sources`` (COPY FROM a block's merged
view) resolves inside the other block's root, where escapes are impossible.

Globs use ``*``, ``?`` and ``[...]`` per path component and, like Docker, ``*`` matches dotfiles.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Callable

from minibox.errors import BuildFailed
from minibox.sandbox import rootfs

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Source:
    path: str          # host path to read (top-level symlinks already followed)
    name: str          # the name it gets when copied into a directory


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in _GLOB_CHARS)


def context_sources(context_dir: str, sources: list[str], line: int,
                    path: str = "MiniBox") -> list[Source]:
    """Resolve local COPY sources with the same rules the daemon keyed them by
    (``minibox.builder.context.resolve_sources``): globs, escape checks, .miniboxignore."""
    from minibox.builder.context import resolve_sources

    return [Source(s.path, _name(s.rel, s.path))
            for s in resolve_sources(context_dir, sources, line, path)]


def from_sources(src_root: str, block: str, sources: list[str], line: int) -> list[Source]:
    """Resolve COPY FROM sources inside ``src_root`` (symlinks followed within it)."""
    out: list[Source] = []
    for pattern in sources:
        norm = os.path.normpath("/" + pattern).lstrip("/") or "."
        if has_glob(norm):
            matches = _glob(norm, lambda rel: rootfs.resolve(src_root, rel))
        else:
            matches = [norm]
        if not matches:
            raise BuildFailed(f"COPY at line {line}: nothing in block '{block}' matches "
                              f"'{pattern}'")
        for rel in matches:
            host = rootfs.resolve(src_root, rel)
            if not os.path.lexists(host):
                raise BuildFailed(f"COPY at line {line}: '/{rel.lstrip('./')}' does not exist "
                                  f"in block '{block}'")
            out.append(Source(host, _name(rel, host)))
    return out


def _glob(pattern: str, host_of: Callable[[str], str]) -> list[str]:
    """Relative paths matching ``pattern``; ``host_of(rel)`` maps one to a host path."""
    found = [""]
    for comp in pattern.split("/"):
        nxt = []
        for rel in found:
            if not has_glob(comp):
                cand = os.path.join(rel, comp)
                if os.path.lexists(host_of(cand)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(host_of(rel) if rel else host_of(".")))
            except (NotADirectoryError, FileNotFoundError):
                continue
            nxt.extend(os.path.join(rel, n) for n in names if fnmatch.fnmatchcase(n, comp))
        found = nxt
    return found


def _name(rel: str, real: str) -> str:
    base = os.path.basename(rel.rstrip("/"))
    return base if base not in ("", ".", "..") else os.path.basename(real)

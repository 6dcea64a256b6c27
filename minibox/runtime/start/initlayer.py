"""A per-image "init layer": the mount points a container needs that its image lacks.

A container's init bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf and mounts
/proc, /sys and /dev.  When the image has no such file or directory, making it at start
would create it in the container's upper dir (and copy /etc up first): a few inodes and a
copy-up per container.  Like Docker's init layer, we make them once per image instead, in
a small read-only layer that goes on top of the image's layers.  Only what is really
missing goes in (whiteouts and opaque directories counted), an image whose /etc is not a
directory is left alone, and the /etc the layer carries copies the image's owner and mode,
so the merged view differs from the image only by the empty mount points.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from pathlib import Path

from minibox.runtime.images import is_whiteout, opaque

DIRS = ("proc", "sys", "dev")
ETC_FILES = ("hostname", "hosts", "resolv.conf")

_CACHE: dict[tuple[str, ...], str | None] = {}
_LOCK = threading.Lock()


def for_image(root: Path, layers: list[str]) -> str | None:
    """The init layer dir for these layers (top first), made on first use; None if the
    image has every mount point already."""
    key = tuple(layers)
    with _LOCK:
        if key in _CACHE and (_CACHE[key] is None or os.path.isdir(_CACHE[key])):
            return _CACHE[key]
    needed = missing(layers)
    path = _make(Path(root), layers, needed) if needed else None
    with _LOCK:
        _CACHE[key] = path
    return path


def missing(layers: list[str]) -> list[tuple[str, str, os.stat_result | None]]:
    """(kind 'dir'|'file', relative path, stat to copy) of each absent mount point."""
    out = []
    for d in DIRS:
        if lookup(layers, d)[0] == "none":
            out.append(("dir", d, None))
    etc_kind, etc_st = lookup(layers, "etc")
    if etc_kind not in ("none", "dir"):
        return out                      # a symlink or a file: not ours to shadow
    files = [f for f in ETC_FILES if lookup(layers, f"etc/{f}")[0] == "none"]
    if files:
        out.append(("dir", "etc", etc_st))
        out += [("file", f"etc/{f}", None) for f in files]
    return out


def lookup(layers: list[str], rel: str) -> tuple[str, os.stat_result | None]:
    """What overlayfs would show at ``rel`` over ``layers`` (top first): ('none'|'dir'|
    'file'|'link'|'other', its stat)."""
    parts = rel.split("/")
    for layer in layers:
        hidden_below = False
        for i in range(1, len(parts)):
            anc = os.path.join(layer, *parts[:i])
            try:
                st = os.lstat(anc)
            except FileNotFoundError:
                break
            if not stat.S_ISDIR(st.st_mode):
                kind = _kind(st)
                return ("none", None) if kind in ("whiteout", "file") else ("other", None)
            if opaque(anc):
                hidden_below = True
        try:
            st = os.lstat(os.path.join(layer, rel))
        except FileNotFoundError:
            if hidden_below:
                return "none", None
            continue
        kind = _kind(st)
        return ("none", None) if kind == "whiteout" else (kind, st)
    return "none", None


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    return "whiteout" if is_whiteout(st) else "other"


def _make(root: Path, layers: list[str], needed) -> str:
    base = root / "containers" / ".init"
    base.mkdir(parents=True, exist_ok=True)
    final = base / hashlib.sha256("\n".join(layers).encode()).hexdigest()[:32]
    if final.is_dir():
        return str(final)
    tmp = base / f".tmp-{os.getpid()}-{threading.get_native_id()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    try:
        for kind, rel, st in needed:
            p = tmp / rel
            if kind == "dir":
                p.mkdir(mode=0o755)
                if st is not None:
                    os.chown(p, st.st_uid, st.st_gid)
                    os.chmod(p, stat.S_IMODE(st.st_mode))
            else:
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.rename(tmp, final)
    except FileExistsError:
        pass                    # another thread made it meanwhile (rename onto a full dir)
    except OSError as e:
        if not final.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            raise OSError(f"cannot make the init layer {final}: {e}") from None
    shutil.rmtree(tmp, ignore_errors=True)
    return str(final)

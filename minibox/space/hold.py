"""Operations in progress (builds, pulls, loads) hold what they use against a prune.

``hold(root, digests)`` writes ``run/holds/<id>.json`` (the manifest digests it uses, its
start time) and keeps a shared ``flock`` on it while the operation runs.  A prune treats
those digests as roots, spares every blob, layer dir and cache entry newer than the oldest
hold (what the operation is writing is not referenced yet), and removes hold files nobody
locks any more (a crashed operation).

A blob an operation finds already stored is ``claim_blob``-ed: its mtime is set to now under
the shared side of ``gc_lock``, so a prune or another operation's undo (which decide under
the exclusive side) either removed it before (the operation then stores it itself) or see it
as newer than this operation's hold and spare it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


CLOCK_SLACK = 1.0


def _dir(root: Path) -> Path:
    return Path(root) / "run" / "holds"


class Hold:
    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd
        self.id = path.stem

        self.digests: set[str] = set()
        self.layers: set[tuple[str, str]] = set()       # (blob digest, diff_id)
        # file times come from the kernel's coarse clock, up to a tick behind time.time():
        # a blob written just after this began must not look older than it
        self.started = time.time() - CLOCK_SLACK

    def add(self, *digests: str) -> None:
        """Hold more manifests (e.g. a base resolved after the hold began)."""
        self.digests.update(digests)
        self._write()

    def add_layers(self, layers) -> None:
        """Hold layers (``LayerInfo`` or their dicts): their blobs and unpacked dirs."""
        for layer in layers:
            d = layer if isinstance(layer, dict) else layer.to_dict()
            self.layers.add((d["digest"], d["diff_id"]))
        self._write()

    def _write(self) -> None:
        """Rewritten in place: the file (and its lock) must stay the same inode."""
        data = json.dumps({"id": self.id, "digests": sorted(self.digests),
                           "started": self.started,
                           "layers": sorted(self.layers)}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


@contextmanager
def hold(root: Path, digests: list[str] = ()) -> Iterator[Hold]:
    d = _dir(root)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{uuid.uuid4().hex}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)                   # locked before anyone can read it
    held = Hold(path, fd)
    held.add(*digests)
    try:
        yield held
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def gc_lock(root: Path, shared: bool = False) -> Iterator[None]:
    """``run/gc.lock``: removals of content (prune, rmi, an operation's undo) hold it
    exclusively, a claim on a stored blob shared."""
    path = Path(root) / "run" / "gc.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def claim_blob(root: Path, path: Path) -> bool:
    """Is the blob at ``path`` stored?  If so it is now marked in use (mtime now), so no
    prune or undo removes it while the running operation that asked relies on it."""
    with gc_lock(root, shared=True):
        try:
            os.utime(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
    return True


def active(root: Path) -> list[dict]:
    """The holds of running operations; stale files (nobody holds them) are removed."""
    out = []
    d = _dir(root)
    if not d.is_dir():
        return out
    for path in d.glob("*.json"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:                   # held: a live operation
                try:
                    out.append(json.loads(path.read_bytes()))
                except (OSError, ValueError):             # being written just now
                    out.append({"digests": [], "started": time.time()})
                continue
            path.unlink(missing_ok=True)              # nobody holds it: left by a crash
        finally:
            os.close(fd)
    return out


def held(root: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """(manifest digests, (blob digest, diff_id) layers) running operations hold."""
    holds = active(root)
    return ({d for h in holds for d in h.get("digests") or []},
            {tuple(x) for h in holds for x in h.get("layers") or []})


def oldest_start(root: Path) -> float | None:
    starts = [float(h.get("started") or 0.0) for h in active(root)]
    return min(starts) if starts else None

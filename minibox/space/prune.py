"""Removing what nothing references: ``system prune``, the content half of ``rmi``, and
the blobs a failed pull or load added (``undo_blobs``).

All three run under an exclusive lock (``run/gc.lock``), take their decisions from a fresh scan
(``refs``), spare whatever a running operation holds or may still be writing (anything
newer than the oldest hold), and report the bytes they freed as measured on the files
they removed (disk blocks, as ``du`` counts them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from minibox.errors import Conflict
from minibox.space import refs
from minibox.space.hold import Hold, active, gc_lock, oldest_start
from minibox.space.usage import disk_usage, forget_layer_sizes
from minibox.store import Store
from minibox.store.layout import remove_tree

TMP_GRACE_S = 3600.0


@dataclass
class Report:
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)     # blob digests and layer dirs
    cache_entries: int = 0
    volumes: list[str] = field(default_factory=list)
    freed: int = 0

    def to_dict(self) -> dict:
        return {"untagged": self.untagged, "deleted": self.deleted,
                "cache_entries": self.cache_entries, "volumes": self.volumes,
                "freed": self.freed}


def prune(store: Store, *, all_images: bool = False, build_cache: bool = False,
          volumes: bool = False) -> Report:
    report = Report()
    with gc_lock(store.root):
        grace = oldest_start(store.root) or time.time()
        scan = refs.scan(store, with_closures=False)
        for digest, names in scan.images.items():
            if scan.containers_of(digest) or digest in scan.held:
                continue
            if all_images:
                _drop_entries(store, digest, names, report)
        if build_cache:
            for entry in scan.cache + scan.bases:
                if _mtime(entry.path) < grace:
                    report.freed += disk_usage(entry.path)
                    entry.path.unlink(missing_ok=True)
                    report.cache_entries += 1
        _sweep(store, grace, report)
        if volumes:
            _prune_volumes(store.root, report)
        report.freed += _clean_tmp(store)
    return report


def remove_image(store: Store, image, name: str | None, *, force: bool = False) -> Report:
    """Untag ``name`` (every tag of the image when None); when no tag and no container is
    left on the image, delete its content that nothing else references."""
    report = Report()
    with gc_lock(store.root):
        scan = refs.scan(store, with_closures=False)
        users = scan.containers_of(image.digest)
        if users and not force:
            who = ", ".join(f"{c.name or c.id[:12]} ({c.status})" for c in users[:5])
            raise Conflict(f"image {name or image.digest} is used by container {who}",
                           hint="remove the container first (minibox rm), or force it with "
                                "`minibox rmi -f` (the container keeps its layers)")
        names = scan.images.get(image.digest, [])
        if name is not None and len(names) > 1:
            store.untag(name)
            report.untagged.append(name)
            return report
        if not users and image.digest not in scan.held:
            _drop_entries(store, image.digest, names, report)
            _sweep(store, oldest_start(store.root) or time.time(), report)
        elif name is not None:
            store.untag(name)
            report.untagged.append(name)
        else:
            for n in names:
                store.untag(n)
                report.untagged.append(n)
    return report


def _drop_entries(store: Store, digest: str, names: list[str], report: Report) -> None:
    store.drop_manifest_entries(digest)
    report.untagged.extend(names or [digest])


def undo_blobs(store: Store, digests, own: Hold) -> list[str]:
    """A failed pull or load removes the blobs it added, except those something else now
    relies on: an image, a container, a cache entry, a held layer (a fresh scan, as a prune
    makes), or another running operation (a blob claimed or written since that operation's
    hold began).  What is spared this way and later used by nothing goes with the next
    prune.  Returns the digests removed."""
    digests = set(digests)
    if not digests:
        return []
    removed = []
    with gc_lock(store.root):
        others = [float(h.get("started") or 0.0) for h in active(store.root)
                  if h.get("id") != own.id]
        grace = min(others) if others else float("inf")
        live_blobs, _ = _live(store)
        for digest in sorted(digests - live_blobs):
            path = store.blob_path(digest)
            if _mtime(path) >= grace:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(digest)
    return removed


def _live(store: Store) -> tuple[set[str], set[str]]:
    """(blob digests, layer dir names) some root reaches."""
    scan = refs.scan(store)
    live_blobs: set[str] = set()
    live_dirs: set[str] = set()
    for c in scan.closures.values():
        live_blobs.update(c.blobs)
        live_dirs.update(c.layer_dirs)
    for c in scan.containers:
        live_dirs.update(c.layer_dirs)
    for entry in scan.cache + scan.bases + scan.held_layers:
        live_blobs.add(entry.blob)
        live_dirs.add(entry.layer_dir)
    return live_blobs, live_dirs


def _sweep(store: Store, grace: float, report: Report) -> None:
    """Delete blobs and layer dirs no root reaches (and not newer than ``grace``)."""
    live_blobs, live_dirs = _live(store)
    for path in _entries(store.layout.blobs):
        if "sha256:" + path.name not in live_blobs and _mtime(path) < grace:
            size = disk_usage(path)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            report.freed += size
            report.deleted.append("sha256:" + path.name)
    removed = []
    for path in _entries(store.layout.layers):
        if path.name not in live_dirs and _mtime(path) < grace:
            size = disk_usage(path)
            remove_tree(path)
            report.freed += size
            report.deleted.append(f"layer {path.name[:12]}")
            removed.append(path.name)
    if removed:
        forget_layer_sizes(store, removed)


def _prune_volumes(root: Path, report: Report) -> None:
    used = {v for c in refs.scan_containers(root) for v in c.volumes}
    base = root / "volumes"
    if not base.is_dir():
        return
    for d in base.iterdir():
        if d.is_dir() and not d.name.startswith(".") and d.name not in used \
                and (d / "volume.json").exists():
            report.freed += disk_usage(d)
            remove_tree(d)
            report.volumes.append(d.name)


def _clean_tmp(store: Store) -> int:
    before = disk_usage(store.layout.tmp)
    store.clean_tmp(older_than=TMP_GRACE_S)
    return max(0, before - disk_usage(store.layout.tmp))


def _entries(d: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(d) if not e.name.startswith(".")]
    except FileNotFoundError:
        return []


def _mtime(path: Path) -> float:
    """When ``path`` last changed in any way: ctime, which a rename, an extraction's
    utime and a touch all update, and which no archive can set into the past."""
    try:
        return path.lstat().st_ctime
    except FileNotFoundError:
        return float("inf")

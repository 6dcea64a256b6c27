"""``system df``: what the images, containers, volumes and build cache take on disk, and how
much of it a prune could free.  Sizes are disk blocks, as ``du`` counts them (hard links
once); unpacked layer dirs are measured once and remembered (they never change), so a df
of a large store stays fast."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from minibox.space import refs
from minibox.store import Store

_LAYER_SIZES: dict[tuple[str, int], int] = {}      # (layer dir, its inode) -> bytes
_LOCK = threading.Lock()


def disk_usage(path: Path) -> int:
    """Bytes of disk ``path`` takes (a file or a whole tree, never following symlinks)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    total += st.st_blocks * 512
    if not os.path.isdir(path) or os.path.islink(path):
        return total
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(top, name))
            except FileNotFoundError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def layer_size(store: Store, hex_name: str) -> int:
    path = store.layout.layers / hex_name
    try:
        key = (hex_name, os.lstat(path).st_ino)
    except FileNotFoundError:
        return 0
    with _LOCK:
        if key in _LAYER_SIZES:
            return _LAYER_SIZES[key]
    size = disk_usage(path)
    with _LOCK:
        _LAYER_SIZES[key] = size
    return size


def blob_size(store: Store, digest: str) -> int:
    try:
        return os.lstat(store.blob_path(digest)).st_blocks * 512
    except (FileNotFoundError, ValueError):
        return 0


def _content_size(store: Store, blobs, dirs) -> int:
    return sum(blob_size(store, d) for d in blobs) + sum(layer_size(store, h) for h in dirs)


def df(store: Store, *, verbose: bool = False) -> dict:
    scan = refs.scan(store)
    used_by_containers = {c.image_digest for c in scan.containers}
    all_blobs: set[str] = set()
    all_dirs: set[str] = set()
    active_blobs: set[str] = set()
    active_dirs: set[str] = set()
    images = []
    for digest, c in scan.closures.items():
        if digest not in scan.images and digest not in used_by_containers:
            continue
        all_blobs |= set(c.blobs)
        all_dirs |= c.layer_dirs
        active = digest in used_by_containers or digest in scan.held
        if active:
            active_blobs |= set(c.blobs)
            active_dirs |= c.layer_dirs
        if verbose:
            images.append({"digest": digest, "names": scan.images.get(digest, []),
                           "size": _content_size(store, c.blobs, c.layer_dirs),
                           "containers": len(scan.containers_of(digest))})
    image_size = _content_size(store, all_blobs, all_dirs)
    reclaim = image_size - _content_size(store, active_blobs, active_dirs)
    containers = []
    container_size = running_size = 0
    for c in scan.containers:
        size = disk_usage(c.upper)
        container_size += size
        if c.status in ("running", "paused", "restarting"):
            running_size += size
        if verbose:
            containers.append({"id": c.id, "name": c.name, "status": c.status, "size": size})
    volumes, vol_size, vol_reclaim = _volumes(store.root, scan, verbose)
    cache_blobs = {e.blob for e in scan.cache + scan.bases} - all_blobs
    cache_dirs = {e.layer_dir for e in scan.cache + scan.bases} - all_dirs
    cache_size = _content_size(store, cache_blobs, cache_dirs)
    out = {"rows": [
        {"type": "Images", "total": len(scan.images), "active":
         sum(1 for d in scan.images if d in used_by_containers), "size": image_size,
         "reclaimable": reclaim},
        {"type": "Containers", "total": len(scan.containers), "active":
         sum(1 for c in scan.containers if c.status == "running"), "size": container_size,
         "reclaimable": container_size - running_size},
        {"type": "Local Volumes", "total": len(volumes), "active":
         sum(1 for v in volumes if v["in_use"]), "size": vol_size, "reclaimable": vol_reclaim},
        {"type": "Build Cache", "total": len(scan.cache) + len(scan.bases), "active": 0,
         "size": cache_size, "reclaimable": cache_size},
    ]}
    if verbose:
        out.update(images=images, containers=containers, volumes=volumes)
    return out


def _volumes(root: Path, scan: refs.Scan, verbose: bool) -> tuple[list[dict], int, int]:
    used = {v for c in scan.containers for v in c.volumes}
    base = root / "volumes"
    out, total, reclaim = [], 0, 0
    if not base.is_dir():
        return out, 0, 0
    for d in sorted(base.iterdir()):
        if not (d / "volume.json").exists():
            continue
        size = disk_usage(d)
        total += size
        in_use = d.name in used
        if not in_use:
            reclaim += size
        out.append({"name": d.name, "size": size, "in_use": in_use})
    return out, total, reclaim


def info_counts(store: Store) -> dict:
    scan = refs.scan(store, with_closures=False)
    running = sum(1 for c in scan.containers if c.status == "running")
    return {"images": len(scan.images), "containers": len(scan.containers),
            "running": running, "stopped": len(scan.containers) - running,
            "build_cache_entries": len(scan.cache)}


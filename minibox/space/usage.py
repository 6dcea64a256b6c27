"""``system df``: what the images, containers, volumes and build cache take on disk, and how
much of it a prune could free.  Sizes are disk blocks, as ``du`` counts them (hard links
once); unpacked layer dirs are measured once and remembered in ``layers/.sizes.json``
(they never change; the record names the dir's inode, so a layer removed and unpacked
again is measured again), so a df of a large store stays fast, also after a restart."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from minibox import atomic
from minibox.space import refs
from minibox.store import Store

SIZES_FILE = ".sizes.json"                          # in layers/: {hex: [inode, bytes]}
_SIZES: dict[str, dict[str, list[int]]] = {}        # data root -> that file's content
_DIRTY: set[str] = set()
_LOCK = threading.Lock()


def disk_usage(path: Path) -> int:
    """Bytes of disk ``path`` takes (a file or a whole tree, never following symlinks)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    total = st.st_blocks * 512
    if not stat.S_ISDIR(st.st_mode):
        return total
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total


def layer_size(store: Store, hex_name: str) -> int:
    path = store.layout.layers / hex_name
    try:
        ino = os.lstat(path).st_ino
    except FileNotFoundError:
        return 0
    sizes = _sizes(store)
    with _LOCK:
        known = sizes.get(hex_name)
        if known and known[0] == ino:
            return known[1]
    size = disk_usage(path)
    with _LOCK:
        sizes[hex_name] = [ino, size]
        _DIRTY.add(str(store.root))
    return size


def _sizes(store: Store) -> dict[str, list[int]]:
    root = str(store.root)
    with _LOCK:
        if root in _SIZES:
            return _SIZES[root]
    try:
        data = json.loads((store.layout.layers / SIZES_FILE).read_bytes())
        sizes = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 2
                 and all(isinstance(n, int) for n in v)}
    except (OSError, ValueError, AttributeError):
        sizes = {}                                   # none yet, or damaged: measure again
    with _LOCK:
        return _SIZES.setdefault(root, sizes)


def forget_layer_sizes(store: Store, hex_names: list[str]) -> None:
    """Drop the records of removed layer dirs (prune calls this)."""
    sizes = _sizes(store)
    with _LOCK:
        for name in hex_names:
            sizes.pop(name, None)
        _DIRTY.add(str(store.root))
    save_layer_sizes(store)


def save_layer_sizes(store: Store) -> None:
    """Write the sizes measured since the last save (records of removed layers dropped)."""
    root = str(store.root)
    with _LOCK:
        if root not in _DIRTY:
            return
        _DIRTY.discard(root)
        sizes = _SIZES[root]
        for gone in [k for k in sizes if not (store.layout.layers / k).is_dir()]:
            del sizes[gone]
        data = json.dumps(sizes, separators=(",", ":")).encode()
    try:
        # only a cache (a lost one is measured again): atomic, not durable
        atomic.write_file(store.layout.layers / SIZES_FILE, data, durable=False,
                          tmp_dir=store.layout.tmp)
    except OSError:
        pass                                         # only a cache: measured again later


def upper_size(c: refs.Container) -> int:
    """Disk use of a container's upper dir.  Only its processes write there, so the size of
    a container at rest is measured once per state it is in (a start or an exit rewrites
    its state or exit record, and with it the stamp)."""
    if c.status not in _AT_REST or not c.stamp:
        return disk_usage(c.upper)
    with _LOCK:
        hit = _UPPERS.get(c.id)
    if hit is not None and hit[0] == c.stamp:
        return hit[1]
    size = disk_usage(c.upper)
    with _LOCK:
        if len(_UPPERS) > 100_000:
            _UPPERS.clear()
        _UPPERS[c.id] = (c.stamp, size)
    return size


_AT_REST = ("created", "exited")
_UPPERS: dict[str, tuple[tuple, int]] = {}


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
        size = upper_size(c)
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
    save_layer_sizes(store)
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


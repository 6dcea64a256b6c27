"""What in the data root is in use, and by whom.

Roots: the entries of ``index.json`` (tagged images and images pulled by digest), the
containers (their image and the layer dirs they mount), the build cache's entries, the
records of imported base archives, and the operations running now (builds, pulls, loads:
see ``hold``).  From each root, a manifest leads to its config and layer blobs and to the
unpacked layer dirs of its diff_ids.  Whatever no root reaches is garbage.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from minibox.errors import MiniBoxError
from minibox.store import Store
from minibox.store.oci import INDEX_DIGEST, is_digest


@dataclass
class Closure:
    """The content of one image: blobs (digest -> size) and layer dir hex names."""

    blobs: dict[str, int] = field(default_factory=dict)
    layer_dirs: set[str] = field(default_factory=set)


@dataclass
class Container:
    id: str
    name: str
    status: str
    image_digest: str
    layer_dirs: set[str]
    volumes: set[str]
    upper: Path
    stamp: tuple = field(default=(), compare=False)   # its files' (inode, mtime, size)


@dataclass
class CacheEntry:
    path: Path
    blob: str
    layer_dir: str


@dataclass
class Scan:
    images: dict[str, list[str]]            # manifest digest -> names (none: pulled by digest)
    closures: dict[str, Closure]            # manifest digest -> its content
    containers: list[Container]
    cache: list[CacheEntry]
    bases: list[CacheEntry]
    held: set[str]                          # manifest digests running operations use
    held_layers: list[CacheEntry]           # layers they use outside any image

    def containers_of(self, digest: str) -> list[Container]:
        return [c for c in self.containers if c.image_digest == digest]


def closure(store: Store, digest: str) -> Closure:
    """Everything the manifest ``digest`` needs (only what is stored: a damaged image is
    still walked as far as it goes).  A whole one is remembered: content-addressed, it
    never changes."""
    key = (str(store.root), digest)
    known = _CLOSURES.get(key)
    if known is not None:
        return known
    out = Closure()
    try:
        manifest = json.loads(store.blob_path(digest).read_bytes())
        out.blobs[digest] = store.blob_path(digest).stat().st_size
        config = manifest.get("config") or {}
        out.blobs[config["digest"]] = int(config.get("size", 0))
        for layer in manifest.get("layers") or []:
            out.blobs[layer["digest"]] = int(layer.get("size", 0))
        cfg = json.loads(store.blob_path(config["digest"]).read_bytes())
        for diff_id in (cfg.get("rootfs") or {}).get("diff_ids") or []:
            out.layer_dirs.add(diff_id.removeprefix("sha256:"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, MiniBoxError):
        return out
    if len(_CLOSURES) > 10_000:
        _CLOSURES.clear()
    _CLOSURES[key] = out
    return out


_CLOSURES: dict[tuple[str, str], Closure] = {}


def scan(store: Store, *, with_closures: bool = True) -> Scan:
    images: dict[str, list[str]] = {}
    extra: dict[str, set[str]] = {}
    for name, desc in store.index_entries():
        images.setdefault(desc.digest, [])
        if name:
            images[desc.digest].append(name)
        if desc.annotations.get(INDEX_DIGEST):
            extra.setdefault(desc.digest, set()).add(desc.annotations[INDEX_DIGEST])
    containers = scan_containers(store.root)
    from minibox.space.hold import held as held_now
    held, layers = held_now(store.root)
    closures = {}
    if with_closures:
        for digest in {*images, *(c.image_digest for c in containers), *held}:
            if is_digest(digest):
                found = closures[digest] = closure(store, digest)
                for index_digest in extra.get(digest, ()):
                    path = store.blob_path(index_digest)
                    if path.exists():                # a copy: the remembered one stays
                        found = closures[digest] = Closure({**found.blobs}, found.layer_dirs)
                        found.blobs[index_digest] = path.stat().st_size
    return Scan(images, closures, containers, _cache_entries(store.root / "cache" / "blocks"),
                _base_records(store.layout.bases), held,
                [CacheEntry(Path(), blob, diff_id.removeprefix("sha256:"))
                 for blob, diff_id in layers])


def scan_containers(root: Path) -> list[Container]:
    out = []
    base = os.path.join(root, "containers")
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return out
    seen = set()
    for cid in names:
        if cid.startswith("."):
            continue
        d = os.path.join(base, cid)
        seen.add(d)
        container = _RECORDS.get(d)
        if container is not None:
            out.append(container)
    with _RECORDS_LOCK:
        for gone in set(_RECORDS.cache) - seen:
            del _RECORDS.cache[gone]
    return out


class _ContainerRecords:
    """Containers as their ``config.json``, ``state.json`` and the monitor's ``exit.json``
    say, parsed again only when one of the files changed (a df of 500 containers would
    otherwise read and parse 1000 JSON files every time).  They are only ever replaced by
    rename, so a changed file has a new inode."""

    FILES = ("config.json", "state.json", "exit.json")

    def __init__(self):
        self.cache: dict[str, tuple[tuple, Container]] = {}

    def get(self, d: str) -> Container | None:
        key = tuple(_stamp(os.path.join(d, name)) for name in self.FILES)
        hit = self.cache.get(d)
        if hit is not None and hit[0] == key and None not in key:
            return hit[1]
        container = _read_container(d)
        if container is not None:
            container.stamp = key
            with _RECORDS_LOCK:
                self.cache[d] = (key, container)
        return container


def _stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _read_container(d: str) -> Container | None:
    cfg = _read_json(Path(d, "config.json"))
    st = _read_json(Path(d, "state.json"))
    if cfg is None and st is None:
        return None
    cfg, st = cfg or {}, st or {}
    status = st.get("status") or "unknown"
    if status in ("running", "stopping"):            # exited, and the worker has not
        ex = _read_json(Path(d, "exit.json"))        # recorded it yet
        if ex and ex.get("run") == st.get("run"):
            status = "exited"
    image = cfg.get("image") or {}
    dirs = {os.path.basename(str(p).rstrip("/")) for p in image.get("layers") or []}
    vols = {m.get("source") for m in cfg.get("mounts") or [] if m.get("kind") == "volume"}
    return Container(os.path.basename(d), st.get("name") or "", status,
                     image.get("digest") or st.get("image_digest") or "", dirs,
                     {v for v in vols if v}, Path(d, "upper"))


_RECORDS = _ContainerRecords()
_RECORDS_LOCK = threading.Lock()


def _cache_entries(d: Path) -> list[CacheEntry]:
    out = []
    if not d.is_dir():
        return out
    for sub in d.iterdir():
        if not sub.is_dir():
            continue
        for p in sub.glob("*.json"):
            layer = (_read_json(p) or {}).get("layer") or {}
            if layer.get("digest"):
                out.append(CacheEntry(p, layer["digest"],
                                      str(layer.get("diff_id", "")).removeprefix("sha256:")))
    return out


def _base_records(d: Path) -> list[CacheEntry]:
    out = []
    if d.is_dir():
        for p in d.glob("*.json"):
            layer = _read_json(p) or {}
            if layer.get("digest"):
                out.append(CacheEntry(p, layer["digest"],
                                      str(layer.get("diff_id", "")).removeprefix("sha256:")))
    return out


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

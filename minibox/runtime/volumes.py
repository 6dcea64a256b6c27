"""Volumes: DataRoot/volumes/<name>/_data, with a small JSON record beside it.

Named volumes live until ``volume rm``.  Anonymous ones (``-v /path``, an image's VOLUME)
are named with a fresh 64-hex id and record the container they were made for: ``rm -v``
removes them with it, ``run --rm`` too (the container's monitor removes the container;
``reap`` removes its anonymous volumes afterwards), a plain ``rm`` leaves them dangling
(``container`` cleared), as Docker does.  A new, empty volume is filled from the image
at its mount point (Docker's copy-up).
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import time
from pathlib import Path

from minibox.errors import Conflict, NotFound, UserError
from minibox.rmtree import remove_tree
from minibox.runtime.state import ids
from minibox.runtime.spec import VOLUME_NAME_RE
from minibox.atomic import write_json
from minibox.runtime.state import StateStore, read_json

HEX64 = re.compile(r"^[0-9a-f]{64}$")

# an anonymous volume whose container has no record is being created for this long at
# most (or its create failed, or its --rm container is gone): then it is removed
ORPHAN_GRACE_S = 60.0


class VolumeStore:
    def __init__(self, data_root):
        self.root = Path(data_root) / "volumes"

    def _check(self, name: str) -> str:
        if not isinstance(name, str) or not VOLUME_NAME_RE.match(name):
            raise UserError(f"invalid volume name {name!r}",
                            hint="1-64 characters: letters, digits, _ . - (not starting with _ . -)")
        return name

    def path(self, name: str) -> Path:
        return self.root / self._check(name) / "_data"

    def ensure(self, name: str, labels: dict | None = None) -> Path:
        """The volume's data dir, creating the volume if it does not exist."""
        d = self.root / self._check(name)
        if not (d / "volume.json").exists():
            (d / "_data").mkdir(parents=True, exist_ok=True)
            write_json(d / "volume.json", {"name": name, "created_at": time.time(),
                                           "labels": labels or {}, "driver": "local"})
        return d / "_data"

    def create_anonymous(self, container: str) -> str:
        """A new anonymous volume for ``container``; returns its name."""
        name = ids.new_id()
        d = self.root / name
        (d / "_data").mkdir(parents=True)
        write_json(d / "volume.json", {"name": name, "created_at": time.time(), "labels": {},
                                       "driver": "local", "anonymous": True,
                                       "container": container})
        return name

    def copy_up(self, name: str, layers: list[str], target: str) -> None:
        """Fill the volume from the image at ``target`` if the volume is empty."""
        from minibox.runtime.images import copy_image_dir
        data = self.path(name)
        with _locked(data.parent / ".lock"):
            if not any(os.scandir(data)):
                copy_image_dir(layers, target, str(data))

    def create(self, name: str, labels: dict | None = None) -> dict:
        self.ensure(name, labels)
        return self.inspect(name)

    def inspect(self, name: str) -> dict:
        d = self.root / self._check(name)
        meta = read_json(d / "volume.json")
        if meta is None:
            raise NotFound(f"no such volume: {name}", hint="`minibox volume ls` lists volumes")
        return _view(meta, d)

    def list(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            meta = read_json(d / "volume.json")
            if meta:
                out.append(_view(meta, d))
        return out

    def remove(self, name: str, users: list[tuple[str, str]]) -> None:
        """Remove a volume; a Conflict naming the containers that use it (Docker refuses
        that even with --force)."""
        self.inspect(name)
        if users:
            who = ", ".join(f"{n} ({cid[:12]})" for cid, n in users)
            raise Conflict(f"volume {name} is in use by container {who}",
                           hint="remove that container first (minibox rm), then the volume")
        self.discard(name)

    def discard(self, name: str) -> None:
        remove_tree(self.root / self._check(name), ignore_errors=True)

    def release(self, names: list[str], remove: bool, store: StateStore) -> None:
        """The anonymous volumes of a removed container: removed (``rm -v``, unless another
        container uses them), else left dangling."""
        for name in names:
            meta = read_json(self.root / name / "volume.json")
            if not meta or not meta.get("anonymous"):
                continue                          # never a named volume
            if remove and not users(store, name):
                self.discard(name)
            elif meta.get("container"):
                write_json(self.root / name / "volume.json", {**meta, "container": None})

    def reap(self, store: StateStore) -> list[str]:
        """Remove the anonymous volumes of --rm containers that have exited (the monitor
        removes the container itself) and of creates that failed."""
        gone = []
        for v in self.list():
            cid = v.get("container")
            if v.get("anonymous") and cid and _orphaned(store, cid, v["created_at"]) and \
                    not users(store, v["name"], exclude=cid):
                self.discard(v["name"])
                gone.append(v["name"])
        return gone


def _orphaned(store: StateStore, cid: str, created_at: float) -> bool:
    rec = store.load(cid, with_config=True)
    if rec is None:       # gone: auto-removed (its tombstone says so) or a failed create
        return store.read_tomb(cid) is not None or time.time() - created_at > ORPHAN_GRACE_S
    autoremove = bool((rec.config.get("spec") or {}).get("autoremove"))
    return autoremove and rec.effective()["status"] in ("exited", "removed")


def users(store: StateStore, name: str, exclude: str = "") -> list[tuple[str, str]]:
    """(id, name) of every container (running or not) that mounts volume ``name``."""
    out = []
    for rec in store.all():
        if rec.id == exclude:
            continue
        cfg = read_json(rec.dir / "config.json") or {}
        if any(m.get("kind") == "volume" and m.get("source") == name
               for m in cfg.get("mounts") or []):
            out.append((rec.id, rec.name))
    return out


def anonymous_of(mounts: list[dict]) -> list[str]:
    return [m["source"] for m in mounts or [] if m.get("kind") == "volume" and m.get("anonymous")]


def _view(meta: dict, d: Path) -> dict:
    return {**meta, "anonymous": bool(meta.get("anonymous")), "mountpoint": str(d / "_data")}


class _locked:
    """An exclusive flock on ``path`` (between threads and processes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def remove_anonymous(data_root, cid: str, paths: list) -> list[str]:
    """--rm, in the container's monitor: delete its anonymous volumes (``paths``); returns
    the names deleted.  Each path is checked first, whatever the plan says: it must be
    DataRoot/volumes/<64 hex> (symlinks resolved in the parent only), a real directory,
    whose volume.json says anonymous and made for this container, and no other container
    may mount it.  Never a named volume, never anything outside DataRoot/volumes."""
    if not paths:
        return []
    root = os.path.realpath(os.path.join(data_root, "volumes"))
    store = StateStore(data_root)
    gone = []
    for p in paths:
        if not isinstance(p, str) or not os.path.isabs(p):
            continue
        name = os.path.basename(p)
        if not HEX64.match(name) or os.path.realpath(os.path.dirname(p)) != root:
            continue
        path = os.path.join(root, name)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        meta = read_json(Path(path) / "volume.json")
        if not isinstance(meta, dict) or meta.get("anonymous") is not True \
                or meta.get("container") != cid:
            continue
        if users(store, name, exclude=cid):
            continue
        remove_tree(path, ignore_errors=True)   # fd-based: never follows a symlink
        gone.append(name)
    return gone

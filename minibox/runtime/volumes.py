"""Named volumes: DataRoot/volumes/<name>/_data, with a small JSON record beside it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from minibox.errors import Conflict, NotFound, UserError
from minibox.runtime.spec import VOLUME_NAME_RE
from minibox.runtime.state import read_json, write_json


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

    def create(self, name: str, labels: dict | None = None) -> dict:
        self.ensure(name, labels)
        return self.inspect(name)

    def inspect(self, name: str) -> dict:
        d = self.root / self._check(name)
        meta = read_json(d / "volume.json")
        if meta is None:
            raise NotFound(f"no such volume: {name}", hint="`minibox volume ls` lists volumes")
        return {**meta, "mountpoint": str(d / "_data")}

    def list(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            meta = read_json(d / "volume.json")
            if meta:
                out.append({**meta, "mountpoint": str(d / "_data")})
        return out

    def remove(self, name: str, users: list[str]) -> None:
        self.inspect(name)
        if users:
            raise Conflict(f"volume {name} is in use by container(s) {', '.join(u[:12] for u in users)}",
                           hint="remove those containers first")
        shutil.rmtree(self.root / name)

"""The build cache index: block key → the layer it produced (a small JSON file per key).

Entries are written temp + rename after the layer's blob and unpacked directory are in
place, so an entry that exists is always whole; an entry whose blob has since gone is
treated as a miss (a missing unpacked directory is extracted again from the blob).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class BlockCache:
    def __init__(self, store, cache_dir: Path):
        self.store = store
        self.dir = Path(cache_dir) / "blocks"

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The entry for ``key`` if its layer is still whole in the store."""
        try:
            entry = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        layer = entry.get("layer") or {}
        # the blob is what counts: a missing unpacked dir is re-extracted from it on use
        if not self.store.has_blob(layer.get("digest", "")):
            return None
        return entry

    def put(self, key: str, block: str, layer: dict) -> dict:
        entry = {"key": key, "block": block, "layer": layer, "created": time.time()}
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return entry

    def clear(self) -> int:
        n = 0
        if self.dir.is_dir():
            for sub in self.dir.iterdir():
                for p in sub.glob("*.json"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n

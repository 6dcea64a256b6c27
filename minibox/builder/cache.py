"""The build cache index: block key → the layer it produced.

Two copies of each entry: a small JSON file per key in this host's data root, and, when the
farm's Redis is given, ``wire.keys.block_cache_key(key)`` there -- the farm-wide index that every host
sees, so a block built on one host is a hit on every other (an entry is put there only after
the layer's blob reached the daemon's store).  Files are written temp + rename after the
layer's blob and unpacked directory are in place, so an entry that exists is always whole; an
entry whose blob has gone from this host is a miss here unless the caller only needs to know
that the farm has the layer (a missing unpacked directory is extracted again from the blob).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from minibox import atomic
from minibox.wire.keys import BLOCK_CACHE_PATTERN, block_cache_key


class BlockCache:
    def __init__(self, store, cache_dir: Path, redis=None):
        self.store = store
        self.dir = Path(cache_dir) / "blocks"
        self.redis = redis

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str, local_blob: bool = True) -> dict | None:
        """The entry for ``key`` if its layer is still whole in this host's store (or, with
        ``local_blob=False``, anywhere in the farm)."""
        entry = self._local(key)
        if entry is None and self.redis is not None:
            entry = self._shared(key)
        if entry is None:
            return None
        layer = entry.get("layer") or {}
        # the blob is what counts: a missing unpacked dir is re-extracted from it on use
        if not self.store.has_blob(layer.get("digest", "")):
            return None if local_blob else entry
        return entry

    def _local(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def _shared(self, key: str) -> dict | None:
        raw = self.redis.get(block_cache_key(key))
        try:
            entry = json.loads(raw) if raw else None
        except ValueError:
            return None
        return entry if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: str, block: str, layer: dict) -> dict:
        entry = {"key": key, "block": block, "layer": layer, "created": time.time()}
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, entry)
        if self.redis is not None:
            self.redis.set(block_cache_key(key), json.dumps(entry))
        return entry

    def clear(self) -> int:
        """Forget every entry of this host (and the farm-wide copies)."""
        n = 0
        if self.redis is not None:
            for k in self.redis.scan_iter(BLOCK_CACHE_PATTERN, count=1000):
                self.redis.delete(k)
        if self.dir.is_dir():
            for sub in self.dir.iterdir():
                for p in sub.glob("*.json"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n

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
        entry = self.local(key)
        if entry is None and self.redis is not None:
            entry = self.decode(key, self.redis.get(block_cache_key(key)))
        if entry is None:
            return None
        if not self._blob_here(entry):
            return None if local_blob else entry
        return entry

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """``get`` of many keys at once: the entries whose layer is whole in this host's
        store, by key.  The keys this host has no file for are read from the farm-wide
        index in one MGET (a build's lookups are one round trip, not one per block)."""
        found, shared = {}, []
        for key in dict.fromkeys(keys):
            entry = self.local(key)
            if entry is None:
                shared.append(key)
            else:
                found[key] = entry
        if shared and self.redis is not None:
            raws = self.redis.mget([block_cache_key(k) for k in shared])
            for key, raw in zip(shared, raws):
                entry = self.decode(key, raw)
                if entry is not None:
                    found[key] = entry
        return {k: e for k, e in found.items() if self._blob_here(e)}

    def _blob_here(self, entry: dict) -> bool:
        """The blob is what counts: a missing unpacked dir is re-extracted from it on use."""
        return self.store.has_blob((entry.get("layer") or {}).get("digest", ""))

    def local(self, key: str) -> dict | None:
        """This host's entry file for ``key`` (whether its blob is here or not)."""
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def decode(key: str, raw: bytes | None) -> dict | None:
        """A farm-wide entry's raw JSON as read from Redis: the entry, or None when absent
        or not an entry for ``key``."""
        try:
            entry = json.loads(raw) if raw else None
        except ValueError:
            return None
        return entry if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: str, block: str, layer: dict, pipe=None) -> dict:
        """Record ``key`` → ``layer`` (its blob is stored already); the farm-wide copy goes
        into ``pipe`` (a Redis pipeline the caller executes) when one is given."""
        entry = {"key": key, "block": block, "layer": layer, "created": time.time()}
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # not durable: the blob it names was fsynced before, and an entry lost (or left
        # empty) by a crash is only a miss (unreadable JSON is one), never a wrong layer
        atomic.write_json(path, entry, durable=False)
        if pipe is not None or self.redis is not None:
            (pipe if pipe is not None else self.redis).set(block_cache_key(key),
                                                           json.dumps(entry))
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

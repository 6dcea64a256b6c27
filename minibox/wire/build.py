"""The build queue's messages: a block job (daemon -> build worker, Celery task
``minibox.builder.block``) and its result (worker -> daemon, as the task's result AND as the
``block_result`` event on the job's stream, whichever the daemon sees first).

Layers travel as ``minibox.store.layertar.LayerInfo.to_dict()`` dicts (digest, diff_id,
size, media_type, empty); layer stacks are listed TOP-MOST FIRST, as overlayfs lowerdir
wants them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from minibox.wire.codec import from_wire, to_wire

Layer = dict          # LayerInfo.to_dict()


@dataclass(frozen=True)
class BlockJob:
    """Everything a build worker needs to execute one block and commit its layer."""

    job: str                          # the build job's id (events, cancel flag)
    block: str                        # the block's name
    key: str                          # its cache key (lock, cache entry)
    steps: list[dict]                 # builder.plan's filesystem steps, in order
    lowers: list[Layer]               # the layers under it, top-most first
    context_dir: str | None = None    # the build context, on the daemon's data root
    copy_from: dict[str, list[Layer]] = field(default_factory=dict)   # COPY FROM= stacks
    no_cache: bool = False
    network: str = "host"             # RUN's network: host or none
    timestamp: int | None = None      # --timestamp: clamp the layer's mtimes to it (unix s)
    data_root: str = ""               # the daemon's data root ...
    daemon_url: str = ""              # ... and where to fetch from it when not ours

    def to_wire(self) -> dict:
        return to_wire(self)

    @classmethod
    def from_wire(cls, data: dict) -> "BlockJob":
        return from_wire(cls, data, "block job")

    def is_remote(self, data_root) -> bool:
        """True when a worker on ``data_root`` does not share the daemon's data root."""
        return bool(self.data_root) and \
            os.path.realpath(self.data_root) != os.path.realpath(data_root)

    def with_context(self, context_dir: str) -> "BlockJob":
        return replace(self, context_dir=context_dir)


@dataclass(frozen=True)
class BlockResult:
    """A block's outcome: its layer (ok) or the error and the last output lines."""

    ok: bool
    layer: Layer | None = None
    cached: bool | None = None        # found in the cache instead of executed
    duration: float | None = None     # seconds of execution (when executed)
    error: dict | None = None         # MiniBoxError.to_dict() when not ok
    tail: list[str] | None = None     # the failed step's last output lines

    @classmethod
    def built(cls, layer: Layer, duration: float) -> "BlockResult":
        return cls(ok=True, layer=layer, cached=False, duration=duration)

    @classmethod
    def from_cache(cls, layer: Layer) -> "BlockResult":
        return cls(ok=True, layer=layer, cached=True)

    @classmethod
    def failed(cls, error: dict, tail: list[str] | None = None) -> "BlockResult":
        return cls(ok=False, error=error, tail=tail)

    def to_wire(self) -> dict:
        return to_wire(self)

    @classmethod
    def from_wire(cls, data: dict) -> "BlockResult":
        return from_wire(cls, data, "block result")

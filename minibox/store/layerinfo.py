"""``LayerInfo``: what the rest of MiniBox knows about one layer.

It crosses process boundaries (Celery results, HTTP bodies) as plain JSON via
``to_dict``/``from_dict``.  ``dir`` is where this machine unpacked it; another machine
should ask its own store (``Store.layer_dir(diff_id)``) instead of trusting that path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minibox.store.oci import EMPTY_TAR_DIFF_ID, Descriptor, digest_hex


@dataclass(frozen=True)
class LayerInfo:
    diff_id: str          # sha256 of the uncompressed tar (config rootfs.diff_ids)
    digest: str           # sha256 of the blob as stored (== diff_id when uncompressed)
    size: int             # blob size in bytes
    media_type: str
    empty: bool = False   # the tar has no entries: callers may leave it out of an image
    dir: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        digest_hex(self.diff_id)
        digest_hex(self.digest)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(digest=self.digest, size=self.size, media_type=self.media_type)

    def to_dict(self) -> dict:
        return {"diff_id": self.diff_id, "digest": self.digest, "size": self.size,
                "media_type": self.media_type, "empty": self.empty,
                "dir": str(self.dir) if self.dir else None}

    @classmethod
    def from_dict(cls, data: dict) -> "LayerInfo":
        return cls(diff_id=data["diff_id"], digest=data["digest"], size=int(data["size"]),
                   media_type=data["media_type"], empty=bool(data.get("empty", False)),
                   dir=Path(data["dir"]) if data.get("dir") else None)

    @classmethod
    def from_descriptor(cls, descriptor: Descriptor, diff_id: str) -> "LayerInfo":
        return cls(diff_id=diff_id, digest=descriptor.digest, size=descriptor.size,
                   media_type=descriptor.media_type, empty=diff_id == EMPTY_TAR_DIFF_ID)

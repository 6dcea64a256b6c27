"""OCI vocabulary shared by the store: media types, descriptors, digests, the host platform.

Digests are always ``sha256:<64 hex>``; anything else is refused before it can become a
path under ``blobs/``.
"""

from __future__ import annotations

import hashlib
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from minibox.errors import UserError

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MEDIA_INDEX, DOCKER_MANIFEST_LIST})

LAYER_MEDIA_TYPES = {"none": MEDIA_LAYER, "gzip": MEDIA_LAYER_GZIP, "zstd": MEDIA_LAYER_ZSTD}

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
# On an index.json entry: the digest of the image index this manifest was chosen from.
INDEX_DIGEST = "dev.minibox.index.digest"
# On an index.json entry without a tag: the reference it was pulled by (name@digest).
PULLED_BY = "dev.minibox.pulled-by"

# sha256 of an empty tar stream (two zero blocks): the well-known "empty layer" diff_id.
EMPTY_TAR_DIFF_ID = "sha256:" + hashlib.sha256(bytes(1024)).hexdigest()

_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
         "i686": "386", "i386": "386"}


def digest_hex(digest: str) -> str:
    """The hex part of a ``sha256:<hex>`` digest; UserError for anything else."""
    m = _DIGEST_RE.match(digest or "")
    if not m:
        raise UserError(f"invalid digest {digest!r}",
                        hint="digests look like sha256:<64 lowercase hex digits>")
    return m.group(1)


def is_digest(text: str) -> bool:
    return bool(_DIGEST_RE.match(text or ""))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def host_architecture() -> str:
    """The OCI architecture name of this machine (``amd64`` on x86_64, ``arm64`` on aarch64)."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine)


def rfc3339(moment: datetime | None = None) -> str:
    """UTC time as RFC 3339 with a ``Z`` suffix and whole seconds (stable in digests)."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    digest: str
    size: int
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    platform: dict[str, str] | None = field(default=None, compare=False)

    def to_oci(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_oci(cls, data: dict) -> "Descriptor":
        digest_hex(data.get("digest", ""))
        return cls(digest=data["digest"], size=int(data.get("size", 0)),
                   media_type=data.get("mediaType", ""),
                   annotations=dict(data.get("annotations") or {}),
                   platform=data.get("platform"))

    @property
    def hex(self) -> str:
        return digest_hex(self.digest)

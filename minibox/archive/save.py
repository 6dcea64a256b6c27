"""``save``: images as one tar that is both an OCI image layout and a ``docker save`` archive.

As ``docker save`` writes since Docker 25: ``oci-layout``, ``index.json`` (one entry per
name, with ``io.containerd.image.name`` = the full name and
``org.opencontainers.image.ref.name`` = the tag) and ``blobs/sha256/…``, plus Docker's
``manifest.json`` (Config, RepoTags, Layers as paths of those same blobs).  So
``skopeo`` reads it as ``oci-archive:`` and ``docker-archive:``, and ``podman load`` and
``docker load`` load it.  Entries are written in a fixed order with fixed metadata: the
same images give the same bytes.
"""

from __future__ import annotations

import json
import os
import tarfile
from typing import BinaryIO

from minibox.errors import StoreError, UserError
from minibox.store import Image, Store
from minibox.store.oci import MEDIA_INDEX, REF_NAME_ANNOTATION, Descriptor

CONTAINERD_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20


def resolve_all(store: Store, names: list[str]) -> list[tuple[str | None, Image]]:
    """(name to record, image) for each requested image; UserError for none given."""
    if not names:
        raise UserError("name at least one image to save")
    out = []
    for name in names:
        image = store.resolve(name)
        out.append((image.name, image))
    return out


def full_name(name: str) -> str:
    """``busybox:latest`` -> ``docker.io/library/busybox:latest`` (as Docker records it)."""
    from minibox.registry.reference import parse

    ref = parse(name)
    return f"{ref.registry}/{ref.repository}:{ref.tag or 'latest'}"


def save(store: Store, images: list[tuple[str | None, Image]], out: BinaryIO) -> None:
    """Write the archive of ``images`` to ``out`` (a stream: it is never seeked).  Blobs go
    out as they are stored (never recompressed), in 1 MiB writes: each write is a chunk of
    the HTTP answer, so small ones cost more than the bytes."""
    tar = _TarWriter(out)
    tar.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    tar.add_dir("blobs")
    tar.add_dir("blobs/sha256")
    seen: set[str] = set()
    index, docker = [], []
    for name, image in images:
        config = Descriptor.from_oci(image.manifest["config"])
        for desc in (config, *image.layers, image.descriptor):
            if desc.digest not in seen:
                seen.add(desc.digest)
                tar.add_blob(store, desc.digest)
        annotations = {}
        if name:
            annotations = {CONTAINERD_NAME: full_name(name),
                           REF_NAME_ANNOTATION: name.rpartition(":")[2]}
        index.append(Descriptor(image.digest, image.descriptor.size,
                                image.descriptor.media_type, annotations).to_oci())
        docker.append({"Config": _blob_path(config.digest),
                       "RepoTags": [name] if name else [],
                       "Layers": [_blob_path(d.digest) for d in image.layers]})
    tar.add_bytes("index.json", json.dumps(
        {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index}).encode())
    tar.add_bytes("manifest.json", json.dumps(docker).encode())
    tar.close()


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _info(name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 0
    return info


class _TarWriter:
    """The bytes ``tarfile`` writes in PAX format (headers, data, padding, two zero blocks,
    zeros to a whole record), with the data in large writes."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    @staticmethod
    def _header(info: tarfile.TarInfo) -> bytes:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def add_dir(self, name: str) -> None:
        self._write(self._header(_info(name, tarfile.DIRTYPE)))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(self._header(_info(name, tarfile.REGTYPE, len(data))) + data +
                    _padding(len(data)))

    def add_blob(self, store: Store, digest: str) -> None:
        path = store.blob_path(digest)
        try:
            f = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise UserError(f"blob {digest} is missing from the store; cannot save the image",
                            hint="re-pull or rebuild the image") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            pending = self._header(_info(_blob_path(digest), tarfile.REGTYPE, size))
            left = size
            while left:
                data = f.read(min(left, _CHUNK))
                if not data:
                    raise StoreError(f"blob {digest} shrank while it was being saved")
                left -= len(data)
                self._write(pending + data if pending else data)
                pending = b""
            self._write(pending + _padding(size))

    def close(self) -> None:
        self._write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        rest = self.offset % tarfile.RECORDSIZE
        if rest:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - rest))


def _padding(size: int) -> bytes:
    return tarfile.NUL * (-size % tarfile.BLOCKSIZE)

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

import io
import json
import os
import tarfile
from typing import BinaryIO

from minibox.errors import UserError
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
    """Write the archive of ``images`` to ``out`` (a stream: it is never seeked)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        seen: set[str] = set()
        index, docker = [], []
        for name, image in images:
            config = Descriptor.from_oci(image.manifest["config"])
            for desc in (config, *image.layers, image.descriptor):
                if desc.digest not in seen:
                    seen.add(desc.digest)
                    _add_blob(tar, store, desc.digest)
            annotations = {}
            if name:
                annotations = {CONTAINERD_NAME: full_name(name),
                               REF_NAME_ANNOTATION: name.rpartition(":")[2]}
            index.append(Descriptor(image.digest, image.descriptor.size,
                                    image.descriptor.media_type, annotations).to_oci())
            docker.append({"Config": _blob_path(config.digest),
                           "RepoTags": [name] if name else [],
                           "Layers": [_blob_path(d.digest) for d in image.layers]})
        _add_bytes(tar, "index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": index}).encode())
        _add_bytes(tar, "manifest.json", json.dumps(docker).encode())


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _info(name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 0
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, tarfile.DIRTYPE))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, store: Store, digest: str) -> None:
    path = store.blob_path(digest)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"blob {digest} is missing from the store; cannot save the image",
                        hint="re-pull or rebuild the image") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        tar.addfile(_info(_blob_path(digest), tarfile.REGTYPE, size), f)

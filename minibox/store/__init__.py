"""The data root: an OCI image layout plus unpacked layers, written crash-safely.

``Store(root)`` opens (creating if needed) the data root.  It is itself a valid OCI image
layout, so ``skopeo inspect oci:ROOT:app:latest`` and ``umoci ls --layout ROOT`` read it
as is.  Several processes (the daemon, build workers) may use one root at the same time:
blobs and layer dirs are content-addressed and committed by rename, and ``index.json`` is
rewritten under a lock.  See ``layout.py`` for what lives where.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from minibox.errors import NotFound, StoreError
from minibox.kernel import syncfs
from minibox.store.blobs import BlobStore, BlobWriter
from minibox.store.images import (Image, ImageSummary, build_config, build_manifest,
                                  image_platform, load_image, platform_fields, summarize)
from minibox.store.index import IndexFile, normalize_name
from minibox.store.layerinfo import LayerInfo
from minibox.store.layout import (Layout, clean_dir_entries, remove_tree,
                                  rename_dir_noreplace)
from minibox.store.oci import (EMPTY_TAR_DIFF_ID, INDEX_DIGEST, MEDIA_CONFIG, MEDIA_MANIFEST, Descriptor,
                               digest_hex, is_digest)

__all__ = ["Store", "Descriptor", "Image", "ImageSummary", "LayerInfo", "BlobWriter",
           "normalize_name"]

DAY = 24 * 3600.0


class Store:
    def __init__(self, root: Path):
        self.layout = Layout(Path(root))
        self.layout.create()
        self._blobs = BlobStore(self.layout)
        self._index = IndexFile(self.layout)
        self._index.ensure_exists()

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def bases_dir(self) -> Path:
        """Where base resolvers keep their small JSON records (``bases/<hex>.json``)."""
        return self.layout.bases

    # -- blobs ------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self._blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self._blobs.has(digest)

    def read_blob(self, digest: str, *, verify: bool = True) -> bytes:
        return self._blobs.read(digest, verify=verify)

    def read_json(self, digest: str) -> dict:
        return self._blobs.read_json(digest)

    def put_blob_bytes(self, data: bytes, media_type: str, *, sync_dir: bool = True
                       ) -> Descriptor:
        return self._blobs.put_bytes(data, media_type, sync_dir=sync_dir)

    def put_json(self, obj: dict, media_type: str) -> Descriptor:
        """Store ``obj`` as canonical JSON (sorted keys, compact)."""
        return self._blobs.put_json(obj, media_type)

    def open_blob_writer(self, media_type: str, *, expected_digest: str | None = None,
                         expected_size: int | None = None, sync_dir: bool = True
                         ) -> BlobWriter:
        """A context manager streaming one blob into ``tmp/``; committed on a clean exit,
        discarded on an exception.  A mismatch with the expected digest or size is a
        StoreError and nothing is committed.  ``sync_dir=False``: the caller calls
        ``sync_blobs`` once, after its last blob and before anything refers to them."""
        return self._blobs.writer(media_type, expected_digest=expected_digest,
                                  expected_size=expected_size, sync_dir=sync_dir)

    def sync_blobs(self) -> None:
        """Make every blob committed so far durable (its directory entry too)."""
        self._blobs.sync_dir()

    # -- images -----------------------------------------------------------------------
    def tag(self, name: str, manifest: Descriptor) -> str:
        """Point ``name`` (normalized to ``name:tag``) at a stored manifest; returns the name."""
        if not self.has_blob(manifest.digest):
            raise StoreError(f"cannot tag {name!r}: manifest {manifest.digest} is not stored")
        return self._index.set(name, manifest)

    def keep_untagged(self, manifest: Descriptor, source: str) -> None:
        """Record a manifest pulled by digest only: an index entry without a tag (so it is
        not pruned as unreferenced), replaced by a later record of the same digest."""
        if not self.has_blob(manifest.digest):
            raise StoreError(f"cannot record {source}: manifest {manifest.digest} is not "
                             f"stored")
        self._index.keep_untagged(manifest, source)

    def drop_manifest_entries(self, digest: str) -> None:
        """Remove every ``index.json`` entry (tagged or not) of the manifest ``digest``."""
        self._index.update(lambda manifests: [e for e in manifests
                                              if e.get("digest") != digest])

    def untag(self, name: str) -> None:
        """Remove a tag.  Blobs and layers stay until a prune."""
        if not self._index.remove(name):
            raise _not_found(name)

    def resolve(self, ref: str) -> Image:
        """``name[:tag]``, ``name@sha256:…`` or a bare manifest digest -> Image."""
        if "@" in ref or is_digest(ref):
            return self._resolve_digest(ref.rpartition("@")[2], ref)
        name = normalize_name(ref)
        descriptor = self._index.lookup(name)
        if descriptor is None:
            raise _not_found(ref)
        return load_image(self._blobs, descriptor, name)

    def _resolve_digest(self, digest: str, ref: str) -> Image:
        digest_hex(digest)
        if not self.has_blob(digest):
            raise _not_found(ref)
        for name, descriptor in self._index.tagged():
            if descriptor.digest == digest:
                return load_image(self._blobs, descriptor, name)
        for name, descriptor in self._index.entries():
            if digest in (descriptor.digest, descriptor.annotations.get(INDEX_DIGEST)):
                return load_image(self._blobs, descriptor, name)
        manifest = self.read_json(digest)
        descriptor = Descriptor(digest, self.blob_path(digest).stat().st_size,
                                manifest.get("mediaType") or MEDIA_MANIFEST)
        return load_image(self._blobs, descriptor, None)

    def index_lookup(self, name: str) -> Descriptor | None:
        """The manifest tagged ``name``, or None."""
        return self._index.lookup(name)

    def index_entries(self) -> list[tuple[str | None, Descriptor]]:
        """Every ``index.json`` entry: (tag or None, manifest descriptor)."""
        return self._index.entries()

    def list_images(self) -> list[ImageSummary]:
        """Every tagged image, sorted by name."""
        return [summarize(self._blobs, name, d) for name, d in self._index.tagged()]

    def write_image(self, name: str | None, config: dict, layers: list[LayerInfo], *,
                    created: str | datetime | None = None,
                    history: list[dict] | None = None,
                    platform: str | None = None) -> Descriptor:
        """Write the config and manifest for ``layers`` (bottom -> top) and tag ``name``.

        ``config`` is the runtime section (Env, Cmd, Entrypoint, WorkingDir, User,
        ExposedPorts, Volumes, Labels).  Given ``created``, the same inputs always give the
        same config and manifest digests.  ``history`` defaults to one entry per layer.
        ``platform`` (OS/ARCH[/VARIANT], default this machine's) labels the image.
        """
        if name:
            name = normalize_name(name)              # refuse a bad name before writing
        for layer in layers:
            if not self.has_blob(layer.digest):
                raise StoreError(f"cannot write image {name or ''}: layer blob "
                                 f"{layer.digest} is not stored")
        plat = image_platform(platform)
        config_blob = build_config(config, layers, created=created, history=history,
                                   platform=plat)
        config_desc = self.put_json(config_blob, MEDIA_CONFIG)
        manifest = self.put_json(build_manifest(config_desc, layers), MEDIA_MANIFEST)
        manifest = Descriptor(manifest.digest, manifest.size, manifest.media_type,
                              platform=platform_fields(plat))
        if name:
            self.tag(name, manifest)
        return manifest

    # -- layers -----------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> Path:
        """Where the unpacked layer lives (it may not exist yet)."""
        return self.layout.layers / digest_hex(diff_id)

    def has_layer_dir(self, diff_id: str) -> bool:
        return self.layer_dir(diff_id).is_dir()

    def ensure_layer_dir(self, layer: LayerInfo) -> Path:
        """The unpacked dir of ``layer``, extracting its blob first if needed.

        The extracted tar is checked against ``layer.diff_id`` before the dir is trusted.
        """
        dest = self.layer_dir(layer.diff_id)
        if dest.is_dir():
            return dest
        with self._unpacking(layer.diff_id):        # the first use of a pulled or loaded
            if not dest.is_dir():                   # image: once, however many start it
                self._unpack(layer.descriptor, expect_diff_id=layer.diff_id)
        return dest

    @contextmanager
    def _unpacking(self, diff_id: str) -> Iterator[None]:
        """An exclusive lock per layer (``layers/.<hex>.lock``; prune skips dot names).  It
        is removed when done: a waiter on the removed file finds the dir there."""
        path = self.layout.layers / f".{digest_hex(diff_id)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            os.close(fd)

    def import_layer(self, blob: Descriptor) -> LayerInfo:
        """Unpack a stored layer blob whose diff_id is not known yet (a base archive, a
        pulled layer); returns its LayerInfo with ``dir`` set."""
        diff_id = self._unpack(blob, expect_diff_id=None)
        return LayerInfo(diff_id=diff_id, digest=blob.digest, size=blob.size,
                         media_type=blob.media_type, empty=diff_id == EMPTY_TAR_DIFF_ID,
                         dir=self.layer_dir(diff_id))

    def _unpack(self, blob: Descriptor, expect_diff_id: str | None) -> str:
        from minibox.store.layertar import extract_layer   # layertar imports this package

        if not self.has_blob(blob.digest):
            raise StoreError(f"layer {blob.digest} is not stored, cannot unpack it",
                             hint="rebuild or re-pull the image that uses it")
        work = self.tmp_dir("layer-")
        try:
            diff_id = extract_layer(self.blob_path(blob.digest), blob.media_type, work)
            if expect_diff_id is not None and diff_id != expect_diff_id:
                raise StoreError(f"layer {blob.digest} unpacks to {diff_id}, not the "
                                 f"expected {expect_diff_id}",
                                 hint="the blob or the image config is damaged")
            self.adopt_layer_dir(work, diff_id)
        except BaseException:
            remove_tree(work)
            raise
        return diff_id

    def adopt_layer_dir(self, work: Path, diff_id: str) -> Path:
        """Make the finished dir ``work`` the unpacked layer ``diff_id`` (flushing its data
        first).  If that layer exists already, ``work`` is removed instead."""
        dest = self.layer_dir(diff_id)
        if dest.is_dir():
            remove_tree(work)
            return dest
        syncfs(str(work))
        if not rename_dir_noreplace(work, dest):
            remove_tree(work)
        return dest

    # -- scratch space ----------------------------------------------------------------
    def tmp_dir(self, prefix: str = "work-") -> Path:
        """A fresh private (0700) directory under ``tmp/``, on the store's filesystem."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.layout.tmp))

    def clean_tmp(self, older_than: float = DAY) -> int:
        """Remove ``tmp/`` entries untouched for ``older_than`` seconds (skipping anything
        with a mount below it); returns how many were removed."""
        return clean_dir_entries(self.layout.tmp, older_than)


def _not_found(ref: str) -> NotFound:
    return NotFound(f"image '{ref}' not found",
                    hint="build it with `minibox build -t NAME .`, or see `minibox images`")

"""``load``: images from an archive that minibox, ``podman save`` (docker-archive and
oci-archive), ``skopeo copy`` (both) or ``docker save`` wrote; plain, gzip or zstd.

The archive is read once, as it arrives (``spool.py``: its layers go straight into the blob
store, each hashed as it is copied and checked against its digest), then its images are
put together: manifests and media types checked as a pulled image's are, the config and
manifest blobs verified.  Layers are stored as blobs and, as a pulled image's, unpacked on
first use (through the safe extractor); before anything is tagged each new layer is read
once as it will be unpacked (``store/layercheck.py``: tar safety, limits, its diff_id), so
a malicious or damaged archive is refused by the load itself.  The blobs are fsynced as
they are committed, ``blobs/`` once for the whole load; images are tagged only when all of
them are complete; a failure removes what the load added, and a success the blobs of the
archive no image uses.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from minibox.archive.save import CONTAINERD_NAME
from minibox.archive.spool import Archive, Spooler, layer_media_type
from minibox.errors import StoreError, UserError
from minibox.space.hold import claim_blob, hold
from minibox.space.prune import undo_blobs
from minibox.store import Store
from minibox.store.layercheck import check_layer
from minibox.store.layerinfo import LayerInfo
from minibox.store.layerreader import Chunks
from minibox.store.manifests import (MAX_CONFIG_BYTES, host_platform, kind_of,
                                     manifest_parts, parse_json, pick_platform)
from minibox.store.oci import (MEDIA_CONFIG, MEDIA_MANIFEST, REF_NAME_ANNOTATION, Descriptor,
                               is_digest, sha256_digest)
from minibox.store.parallel import in_parallel

_MAX_JSON = 16 << 20
Progress = Callable[[dict], None]


@dataclass
class Loaded:
    names: list[str]
    digest: str


def load(store: Store, chunks: Chunks, progress: Progress | None = None,
         label: str = "the archive") -> list[Loaded]:
    """Load every image of the archive whose bytes ``chunks()`` gives (``b""`` at its end);
    returns what was loaded."""
    progress = progress or (lambda event: None)
    with hold(store.root) as held:
        spooler = Spooler(store, label, progress)
        try:
            archive = spooler.spool(chunks)
        except BaseException:
            undo_blobs(store, spooler.created, held)
            raise
        return _Loader(store, archive, progress, spooler.created, held).run()


class _Loader:
    def __init__(self, store: Store, archive: Archive, progress: Progress,
                 spooled: list[str], held):
        self.store, self.arc, self.progress, self.held = store, archive, progress, held
        self.spooled = spooled                  # blobs the spool added
        self.added_blobs: list[str] = []
        self.used: set[str] = set()             # blobs the loaded images use
        self.layers: dict[str, tuple[Descriptor, str]] = {}   # digest -> (blob, diff_id)
        self.lock = threading.Lock()

    def run(self) -> list[Loaded]:
        try:
            images = self._oci() if self.arc.has("index.json") else self._docker()
            if not images:
                raise UserError(f"{self.arc.label} holds no image")
            self._check_layers()
            undo_blobs(self.store, set(self.spooled) - self.used, self.held)  # unused
            self.store.sync_blobs()             # durable before a tag names them
            for loaded, manifest in images:
                for name in loaded.names:
                    self.store.tag(name, manifest)
                if not loaded.names:
                    self.store.keep_untagged(manifest, f"load of {self.arc.label}")
            return [loaded for loaded, _ in images]
        except BaseException:
            undo_blobs(self.store, [*self.spooled, *self.added_blobs], self.held)
            raise

    # -- OCI image layout ------------------------------------------------------------------
    def _oci(self) -> list[tuple[Loaded, Descriptor]]:
        index = self.arc.json("index.json", _MAX_JSON)
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise UserError(f"{self.arc.label}: index.json is not an OCI image index")
        tags = self._docker_tags()
        out = []
        for entry in index["manifests"]:
            try:
                desc = Descriptor.from_oci(entry)
            except (KeyError, TypeError, ValueError, AttributeError, UserError):
                raise UserError(f"{self.arc.label}: index.json has a malformed entry") from None
            body = self._blob_bytes(desc.digest, "manifest")
            doc = parse_json(body, f"manifest {desc.digest}")
            if kind_of(doc, desc.media_type, f"manifest {desc.digest}") == "index":
                desc = pick_platform(doc, host_platform(), f"image index {desc.digest}")
                body = self._blob_bytes(desc.digest, "manifest")
                doc = parse_json(body, f"manifest {desc.digest}")
                kind_of(doc, desc.media_type, f"manifest {desc.digest}")
            config, layers = manifest_parts(doc, f"manifest {desc.digest}")
            names = _oci_names(entry.get("annotations") or {}, tags.get(config.digest, []))
            manifest = self._image(body, doc.get("mediaType") or desc.media_type, config,
                                   [(f"blobs/sha256/{d.digest[7:]}", d) for d in layers])
            out.append((Loaded(names, manifest.digest), manifest))
        return out

    def _docker_tags(self) -> dict[str, list[str]]:
        """config digest -> RepoTags, from a manifest.json beside the OCI layout."""
        if not self.arc.has("manifest.json"):
            return {}
        out: dict[str, list[str]] = {}
        for item in self._docker_manifest():
            digest = sha256_digest(self.arc.read(item["Config"], MAX_CONFIG_BYTES))
            out.setdefault(digest, []).extend(item.get("RepoTags") or [])
        return out

    # -- docker save / docker-archive ------------------------------------------------------
    def _docker_manifest(self) -> list[dict]:
        items = self.arc.json("manifest.json", _MAX_JSON)
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("Config"), str) and
                isinstance(i.get("Layers", []), list) for i in items):
            raise UserError(f"{self.arc.label}: manifest.json is not a docker save manifest")
        return items

    def _docker(self) -> list[tuple[Loaded, Descriptor]]:
        if not self.arc.has("manifest.json"):
            raise UserError(f"{self.arc.label} is neither an OCI layout nor a docker save "
                            f"archive (no index.json, no manifest.json)",
                            hint="give a file written by `minibox save`, `podman save`, "
                                 "`skopeo copy` or `docker save`")
        out = []
        for item in self._docker_manifest():
            raw = self.arc.read(item["Config"], MAX_CONFIG_BYTES)
            parse_json(raw, f"config {item['Config'][:100]}")
            config = Descriptor(sha256_digest(raw), len(raw), MEDIA_CONFIG)
            self._put(config, item["Config"])
            layers = []
            for name in item.get("Layers") or []:
                if not isinstance(name, str):
                    raise UserError(f"{self.arc.label}: manifest.json lists a bad layer")
                layers.append((name, self._stored_layer(name)))
            manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                        "config": config.to_oci(), "layers": [d.to_oci() for _, d in layers]}
            body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
            names = _local_names(item.get("RepoTags") or [])
            desc = self._image(body, MEDIA_MANIFEST, config, layers)
            out.append((Loaded(names, desc.digest), desc))
        return out

    def _stored_layer(self, name: str) -> Descriptor:
        """The blob of a layer file (stored by the spool, or now from memory)."""
        m = self.arc.find(name)
        if m.blob is not None:
            return m.blob
        with self.store.open_blob_writer(layer_media_type(m.data), sync_dir=False) as w:
            w.write(m.data)
        self._note_blob(w)
        return w.descriptor

    # -- common ----------------------------------------------------------------------------
    def _image(self, body: bytes, media_type: str, config: Descriptor,
               layers: list[tuple[str, Descriptor]]) -> Descriptor:
        """Store the config, the layer blobs, then the manifest (layers unpack on first use)."""
        self._put(config, None)
        cfg = parse_json(self.store.read_blob(config.digest), f"config {config.digest}")
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers) or \
                not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
            raise UserError(f"{self.arc.label}: config {config.digest} lists "
                            f"{len(diff_ids)} diff_ids for {len(layers)} layers")
        for (member, desc), diff_id in zip(layers, diff_ids):
            LayerInfo.from_descriptor(desc, diff_id)          # well-formed, for its first use
            self._put(desc, member)
            self.layers.setdefault(desc.digest, (desc, diff_id))
        manifest = self._put_bytes(body, media_type)
        self.used.update((config.digest, manifest.digest, *(d.digest for _, d in layers)))
        return Descriptor(manifest.digest, manifest.size, media_type,
                          platform={"os": cfg.get("os") or "linux",
                                    "architecture": cfg.get("architecture") or "amd64"})

    def _check_layers(self) -> None:
        """Read every layer this load brought (not one the store had unpacked already) as
        it will be unpacked: tar safety, limits and its diff_id, refused now rather than at
        the image's first run."""
        todo = [(self.store.blob_path(desc.digest), desc.media_type,
                 f"{self.arc.label}: layer {desc.digest}", diff_id)
                for desc, diff_id in self.layers.values()
                if not self.store.layer_dir(diff_id).is_dir()]
        in_parallel(check_layer, todo, "load-check")

    def _blob_bytes(self, digest: str, what: str) -> bytes:
        body = self.arc.read(f"blobs/sha256/{digest.split(':', 1)[1]}", _MAX_JSON)
        if sha256_digest(body) != digest:
            raise UserError(f"{self.arc.label}: {what} {digest} does not match its digest",
                            hint="the archive is corrupt")
        return body

    def _put(self, desc: Descriptor, member: str | None) -> None:
        """Make sure the store has blob ``desc``: the spool stored it from ``member`` (a name;
        None: its OCI path), or it is written now from the member's bytes, or the store had
        it; verified by digest and size."""
        if claim_blob(self.store.root, self.store.blob_path(desc.digest)):
            return
        m = self.arc.find(member or f"blobs/sha256/{desc.digest[7:]}")
        if m.data is None:                      # stored under the digest it hashes to
            raise UserError(f"{self.arc.label}: blob {desc.digest} is corrupt: its content "
                            f"hashes to {m.blob.digest}", hint="the archive is damaged; "
                                                               "nothing was loaded")
        with self._writer(desc) as w:
            w.write(m.data)
        self._note_blob(w)

    def _put_bytes(self, body: bytes, media_type: str) -> Descriptor:
        with self.store.open_blob_writer(media_type, sync_dir=False) as w:
            w.write(body)
        self._note_blob(w)
        return w.descriptor

    @contextmanager
    def _writer(self, desc: Descriptor):
        """A blob writer expecting ``desc``; a mismatch is the archive's fault."""
        try:
            with self.store.open_blob_writer(desc.media_type, expected_digest=desc.digest,
                                             expected_size=desc.size, sync_dir=False) as w:
                yield w
        except StoreError as e:
            raise UserError(f"{self.arc.label}: blob {desc.digest} is corrupt: {e.message}",
                            hint="the archive is damaged; nothing was loaded") from None

    def _note_blob(self, writer) -> None:
        if writer.created:
            with self.lock:
                self.added_blobs.append(writer.descriptor.digest)



def _local_names(names: list) -> list[str]:
    """Archive names (``docker.io/library/x:1``, ``localhost/x:1``, ``x:1``) as the store
    names images; names that are not image references are skipped."""
    from minibox.registry.reference import parse

    out = []
    for name in names:
        try:
            tag = parse(str(name)).local_tag
        except UserError:
            continue
        if tag and tag not in out:
            out.append(tag)
    return out


def _oci_names(annotations: dict, docker_tags: list[str]) -> list[str]:
    full = annotations.get(CONTAINERD_NAME)
    if full:
        return _local_names([full])
    ref = str(annotations.get(REF_NAME_ANNOTATION) or "")
    if docker_tags:
        return _local_names(docker_tags)
    if "/" in ref or ":" in ref:                     # a whole name (podman, skopeo)
        return _local_names([ref])
    return []

"""``load``: images from an archive that minibox, ``podman save`` (docker-archive and
oci-archive), ``skopeo copy`` (both) or ``docker save`` wrote; plain, gzip or zstd.

The archive is data: it is never unpacked as a whole.  Members are read by name (a symlink
or hard link is followed only to another member of the archive), every blob is hashed while
it is copied and must match its digest, and manifests and media types are checked as a
pulled image's are.  Layers are stored as blobs and, as a pulled image's, unpacked on first
use (through the safe extractor, with the diff_id checked).  The blobs are fsynced as they
are committed, ``blobs/`` once for the whole load; images are tagged only when all of them
are complete; a failure removes what the load added.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tarfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minibox.archive.save import CONTAINERD_NAME
from minibox.errors import StoreError, UserError
from minibox.store import Store
from minibox.store.compress import open_decompressed
from minibox.store.parallel import in_parallel
from minibox.store.layerinfo import LayerInfo
from minibox.store.manifests import (MAX_CONFIG_BYTES, host_platform, kind_of,
                                     manifest_parts, parse_json, pick_platform)
from minibox.store.oci import (MEDIA_CONFIG, MEDIA_LAYER, MEDIA_LAYER_GZIP, MEDIA_LAYER_ZSTD,
                               MEDIA_MANIFEST, REF_NAME_ANNOTATION, Descriptor, is_digest,
                               sha256_digest)

_CHUNK = 1 << 20
_MAX_HOPS = 16
_MAX_JSON = 16 << 20
Progress = Callable[[dict], None]


@dataclass
class Loaded:
    names: list[str]
    digest: str


class Archive:
    """Random access to the members of a plain tar, by normalized name."""

    def __init__(self, tar: tarfile.TarFile, label: str, path: Path):
        self.tar = tar
        self.label = label
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tar.getmembers():
            name = _norm(m.name)
            if name is not None:
                self.members[name] = m

    def has(self, name: str) -> bool:
        return self._find(name, quiet=True) is not None

    def _find(self, name: str, quiet: bool = False) -> tarfile.TarInfo | None:
        key = _norm(name)
        for _ in range(_MAX_HOPS):
            m = self.members.get(key) if key is not None else None
            if m is None:
                if quiet:
                    return None
                raise UserError(f"{self.label}: '{name[:200]}' is not in the archive",
                                hint="the archive is incomplete or not an image archive")
            if m.issym():
                key = _norm(posixpath.join(posixpath.dirname(key), m.linkname))
            elif m.islnk():
                key = _norm(m.linkname)
            elif m.isreg():
                return m
            else:
                raise UserError(f"{self.label}: '{name[:200]}' is not a regular file")
        raise UserError(f"{self.label}: '{name[:200]}' is a loop of links")

    def read(self, name: str, limit: int = _MAX_JSON) -> bytes:
        m = self._find(name)
        if m.size > limit:
            raise UserError(f"{self.label}: '{name[:200]}' is too large ({m.size} bytes)")
        f = self.tar.extractfile(m)
        return f.read() if f else b""

    def json(self, name: str):
        try:
            return json.loads(self.read(name))
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{self.label}: '{name[:200]}' is not valid JSON") from None

    def open(self, name: str):
        m = self._find(name)
        return self.tar.extractfile(m), m.size

    def chunks(self, name: str) -> "_MemberChunks":
        """The bytes of a member in large reads, on a file handle of its own (so layers
        can be read in parallel)."""
        m = self._find(name)
        if m.sparse is not None:
            raise UserError(f"{self.label}: '{name[:200]}' is a sparse file, which no image "
                            f"archive holds")
        return _MemberChunks(self.path, m.offset_data, m.size, f"{self.label}: '{name[:200]}'")


class _MemberChunks:
    """``next()`` gives a member's next bytes (``b""`` at its end); use as a context manager."""

    def __init__(self, path: Path, offset: int, size: int, what: str):
        self._file = open(path, "rb", buffering=0)
        self._file.seek(offset)
        self._left = size
        self._what = what

    def next(self) -> bytes:
        if not self._left:
            return b""
        data = self._file.read(min(self._left, _CHUNK))
        if not data:
            raise UserError(f"{self._what} is cut short: the archive is truncated")
        self._left -= len(data)
        return data

    def __enter__(self) -> "_MemberChunks":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def _norm(name: str) -> str | None:
    """A member name as a relative path; None for names that point outside the archive."""
    path = posixpath.normpath("/" + name.lstrip("/")).lstrip("/") if name else ""
    if not path or path == "." or ".." in path.split("/"):
        return None
    return path


def load(store: Store, path: Path, progress: Progress | None = None,
         label: str = "the archive") -> list[Loaded]:
    """Load every image of the archive at ``path``; returns what was loaded."""
    from minibox.space.hold import hold

    progress = progress or (lambda event: None)
    with hold(store.root):
        plain = _plain_tar(store, path, label)
        try:
            with tarfile.open(plain, mode="r:") as tar:
                loader = _Loader(store, Archive(tar, label, plain), progress)
                return loader.run()
        except (tarfile.TarError, EOFError) as e:
            raise UserError(f"{label} is not a valid tar archive: {e}",
                            hint="give a file written by `minibox save`, `podman save`, "
                                 "`skopeo copy` or `docker save`") from None
        finally:
            if plain != path:
                plain.unlink(missing_ok=True)


def _plain_tar(store: Store, path: Path, label: str) -> Path:
    """``path`` itself when it is a plain tar, else a decompressed copy in the store's tmp."""
    with open(path, "rb") as raw:
        try:
            stream, kind = open_decompressed(raw)
            if kind == "none":
                return path
            out = store.tmp_dir("load-") / "archive.tar"
            with open(out, "wb") as f:
                shutil.copyfileobj(stream, f, _CHUNK)
            return out
        except (OSError, EOFError, ValueError) as e:
            raise UserError(f"{label} cannot be decompressed: {e}") from None


class _Loader:
    def __init__(self, store: Store, archive: Archive, progress: Progress):
        self.store, self.arc, self.progress = store, archive, progress
        self.added_blobs: list[str] = []
        self.lock = threading.Lock()

    def run(self) -> list[Loaded]:
        try:
            images = self._oci() if self.arc.has("index.json") else self._docker()
            if not images:
                raise UserError(f"{self.arc.label} holds no image")
            self.store.sync_blobs()             # durable before a tag names them
            for loaded, manifest in images:
                for name in loaded.names:
                    self.store.tag(name, manifest)
                if not loaded.names:
                    self.store.keep_untagged(manifest, f"load of {self.arc.label}")
            return [loaded for loaded, _ in images]
        except BaseException:
            self._undo()
            raise

    # -- OCI image layout ------------------------------------------------------------------
    def _oci(self) -> list[tuple[Loaded, Descriptor]]:
        index = self.arc.json("index.json")
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
        items = self.arc.json("manifest.json")
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
            self._put(config, lambda: _once(raw))
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
        """Copy a layer file into the blob store (digest computed); its descriptor."""
        f, size = self.arc.open(name)
        head = f.read(8)
        media = {b"\x1f\x8b": MEDIA_LAYER_GZIP, b"\x28\xb5": MEDIA_LAYER_ZSTD}.get(
            head[:2], MEDIA_LAYER)
        with self.store.open_blob_writer(media, expected_size=size, sync_dir=False) as w:
            w.write(head)
            while chunk := f.read(_CHUNK):
                w.write(chunk)
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
        work = {}                               # a layer shared by two images: once
        for (member, desc), diff_id in zip(layers, diff_ids):
            work.setdefault((desc.digest, diff_id), (member, LayerInfo.from_descriptor(
                desc, diff_id)))
        in_parallel(self._layer, list(work.values()), "load")
        manifest = self._put_bytes(body, media_type)
        return Descriptor(manifest.digest, manifest.size, media_type,
                          platform={"os": cfg.get("os") or "linux",
                                    "architecture": cfg.get("architecture") or "amd64"})

    def _layer(self, member: str, layer: LayerInfo) -> None:
        """Store one layer's blob (its digest checked as it is copied)."""
        if not self.store.has_blob(layer.digest):
            self.progress({"id": layer.digest[7:19], "status": "Loading layer"})
        self._put(layer.descriptor, member)

    def _blob_bytes(self, digest: str, what: str) -> bytes:
        body = self.arc.read(f"blobs/sha256/{digest.split(':', 1)[1]}")
        if sha256_digest(body) != digest:
            raise UserError(f"{self.arc.label}: {what} {digest} does not match its digest",
                            hint="the archive is corrupt")
        return body

    def _put(self, desc: Descriptor, member) -> None:
        """Copy blob ``desc`` from ``member`` (a name, or a callable giving chunks; None:
        its OCI path) unless the store has it; verified by digest and size."""
        if self.store.has_blob(desc.digest):
            return
        if member is None or isinstance(member, str):
            with self.arc.chunks(member or f"blobs/sha256/{desc.digest[7:]}") as source, \
                    self._writer(desc) as w:
                while chunk := source.next():
                    w.write(chunk)
        else:
            with self._writer(desc) as w:
                for chunk in member():
                    w.write(chunk)
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

    def _undo(self) -> None:
        for digest in self.added_blobs:
            self.store.blob_path(digest).unlink(missing_ok=True)


def _once(data: bytes):
    yield data


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

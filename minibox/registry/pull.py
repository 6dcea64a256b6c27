"""Pulling an image into the store.

The manifest (through an index, for the wanted platform) is checked first; then the config
and the layers download in parallel, each verified against its digest and size while it
streams, resumed with a Range request after a dropped connection, and unpacked (the diff_id
checked) as soon as it is complete.  The manifest is stored and tagged last, so an image
appears in ``index.json`` only when everything it needs is there.  A failed pull removes
the blobs and layer dirs it added.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from minibox.errors import NotFound, RegistryError, StoreError, UserError
from minibox.registry import credentials
from minibox.registry.client import Session
from minibox.registry.config import Endpoint, RegistryConfig
from minibox.registry.reference import Reference
from minibox.store import Store
from minibox.store.layerinfo import LayerInfo
from minibox.store.layout import remove_tree
from minibox.store.manifests import (MAX_CONFIG_BYTES, Platform, kind_of, manifest_parts,
                                     parse_json, pick_platform)
from minibox.store.oci import INDEX_DIGEST, Descriptor, sha256_digest
from minibox.store.parallel import in_parallel

RETRIES = 4
_QUEUED_CHUNKS = 16                  # a download runs this far ahead of its unpacking
Progress = Callable[[dict], None]


@dataclass(frozen=True)
class Pulled:
    ref: Reference
    name: str | None           # the store tag set, or None for a digest-only pull
    digest: str                # the manifest's digest
    index_digest: str | None


def pull(store: Store, ref: Reference, config: RegistryConfig, platform: Platform, *,
         progress: Progress | None = None, creds: credentials.Credentials | None = None
         ) -> Pulled:
    """Pull ``ref`` from its mirrors or its registry; the first that has it wins."""
    from minibox.space.hold import hold

    progress = progress or (lambda event: None)
    for endpoint in config.endpoints(ref.registry, ref.api_host):
        login = creds if creds and not endpoint.mirror else \
            credentials.lookup(config.auth_file, endpoint.host)
        config.check_allowed(endpoint.netloc, f"cannot pull {ref}")
        try:
            with hold(store.root):                    # a prune spares what we write
                return _Pull(store, ref, endpoint, login, config, platform, progress).run()
        except (RegistryError, NotFound) as e:
            if not endpoint.mirror:
                raise
            progress({"status": f"mirror {endpoint.url} failed: {e.message}"})
    raise AssertionError("the registry itself is always the last endpoint")


class _Pull:
    def __init__(self, store: Store, ref: Reference, endpoint: Endpoint, creds, config,
                 platform: Platform, progress: Progress):
        self.store, self.ref, self.endpoint = store, ref, endpoint
        self.platform, self.progress = platform, progress
        self.session = Session(endpoint, ref.repository, creds, config)
        self.added_blobs: list[str] = []
        self.added_layers: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> Pulled:
        try:
            return self._run()
        except BaseException:
            self.stop.set()
            self._undo()
            raise
        finally:
            self.session.close()

    def _run(self) -> Pulled:
        what = f"manifest of {self.ref}"
        self.progress({"status": f"Resolving {self.ref} at {self.endpoint.url}"})
        body, media, header_digest = self.session.get_manifest(self.ref.reference)
        digest = self._check_digest(body, self.ref.digest, header_digest, what)
        doc = parse_json(body, what)
        index_digest = None
        if kind_of(doc, media, what) == "index":
            index_digest, index_body = digest, body
            child = pick_platform(doc, self.platform, f"image index of {self.ref}")
            what = f"{self.platform} manifest of {self.ref}"
            body, media, _ = self.session.get_manifest(child.digest)
            digest = self._check_digest(body, child.digest, None, what)
            doc = parse_json(body, what)
            if kind_of(doc, media, what) != "manifest":
                raise UserError(f"{what} is another index; nested indexes are not supported")
        config_desc, layers = manifest_parts(doc, what)
        self.progress({"status": f"Digest: {digest}"})
        config = self._config(config_desc)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise UserError(f"image config of {self.ref} lists {len(diff_ids)} diff_ids for "
                            f"{len(layers)} layers")
        self._layers([LayerInfo.from_descriptor(d, diff_id)
                      for d, diff_id in zip(layers, diff_ids)])
        media_type = doc.get("mediaType") or media
        manifest = self._keep(self.store.put_blob_bytes(body, media_type), digest)
        annotations = {}
        if index_digest:
            self._keep(self.store.put_blob_bytes(index_body, doc.get("mediaType") or media),
                       index_digest)
            annotations[INDEX_DIGEST] = index_digest
        tagged = Descriptor(manifest.digest, manifest.size, media_type, annotations,
                            {"os": self.platform.os,
                             "architecture": config.get("architecture") or
                             self.platform.architecture})
        name = self.ref.local_tag
        if name:
            self.store.tag(name, tagged)
        else:
            self.store.keep_untagged(tagged, str(self.ref))
        self.progress({"status": f"Pulled {self.ref}", "digest": digest})
        return Pulled(self.ref, name, digest, index_digest)

    def _check_digest(self, body: bytes, want: str | None, header: str | None,
                      what: str) -> str:
        digest = sha256_digest(body)
        expected = want or header
        if expected and expected != digest:
            raise RegistryError(f"{what} from {self.endpoint.host} does not match its digest "
                                f"(expected {expected}, got {digest})",
                                hint="the registry or something between us and it is "
                                     "corrupting data")
        return digest

    def _keep(self, desc: Descriptor, digest: str) -> Descriptor:
        assert desc.digest == digest
        return desc

    # -- blobs ----------------------------------------------------------------------------
    def _config(self, desc: Descriptor) -> dict:
        if desc.size > MAX_CONFIG_BYTES:
            raise UserError(f"image config of {self.ref} is too large ({desc.size} bytes)")
        self._fetch(desc, "config")
        return parse_json(self.store.read_blob(desc.digest), f"image config of {self.ref}")

    def _layers(self, layers: list[LayerInfo]) -> None:
        in_parallel(self._layer, [(layer,) for layer in layers], "pull",
                    on_failure=self.stop.set)

    def _layer(self, layer: LayerInfo) -> None:
        short = layer.digest[7:19]
        if self.store.has_layer_dir(layer.diff_id) or self.store.has_blob(layer.digest):
            self._fetch(layer.descriptor, short)
            if self.store.has_layer_dir(layer.diff_id):
                _touch(self.store.layer_dir(layer.diff_id))
                return
            self._unpack_stored(layer, short)
            return
        with _StreamedUnpack(self.store, layer, f"layer {layer.digest} of {self.ref}") as tee:
            self._fetch(layer.descriptor, short, tee)
        if tee.diff_id == layer.diff_id:                 # unpacked while it downloaded
            self.store.adopt_layer_dir(tee.work, layer.diff_id)
            tee.work = None
        elif isinstance(tee.error, UserError) and tee.complete:
            raise tee.error                              # the layer itself is refused
        else:
            self._unpack_stored(layer, short)            # from the verified blob
        with self.lock:
            self.added_layers.append(layer.diff_id)
        self.progress({"id": short, "status": "Pull complete", "total": layer.size})

    def _unpack_stored(self, layer: LayerInfo, short: str) -> None:
        self.progress({"id": short, "status": "Extracting", "total": layer.size})
        try:
            self.store.ensure_layer_dir(layer)
        except StoreError as e:
            raise RegistryError(f"layer {layer.digest} of {self.ref}: {e.message}",
                                hint="the registry serves a layer that does not match the "
                                     "image config") from None

    def _fetch(self, desc: Descriptor, label: str, tee=None) -> None:
        """Download one blob unless the store has it; verified by digest and size.  A
        ``tee`` gets every byte as it is written (and is told of a restart)."""
        if self.store.has_blob(desc.digest):
            _touch(self.store.blob_path(desc.digest))    # newer than our hold: kept
            self.progress({"id": label, "status": "Already exists", "total": desc.size})
            return
        writer = self.store.open_blob_writer(desc.media_type, expected_digest=desc.digest,
                                             expected_size=desc.size)
        try:
            self._download(desc, writer, label, tee)
            try:
                writer.commit()
            except StoreError as e:
                raise RegistryError(f"blob {desc.digest} of {self.ref} from "
                                    f"{self.endpoint.host} is corrupt: {e.message}",
                                    hint="the registry's copy is damaged; nothing was "
                                         "stored") from None
        except BaseException:
            writer.abort()
            raise
        if writer.created:
            with self.lock:
                self.added_blobs.append(desc.digest)

    def _download(self, desc: Descriptor, writer, label: str, tee) -> None:
        import httpx

        failures = 0
        last_report = 0.0
        while True:
            if self.stop.is_set():
                raise _Fatal("pull stopped")
            try:
                with self.session.blob(desc.digest, writer.size) as resp:
                    if writer.size and resp.status_code != 206:
                        writer.restart()             # the server ignored the Range
                        if tee is not None:
                            tee.abandon()
                    for chunk in resp.iter_raw():     # unbuffered: a cut keeps what came
                        if writer.size + len(chunk) > desc.size:
                            raise _Fatal(
                                f"blob {desc.digest} of {self.ref} is larger than the "
                                f"{desc.size} bytes its manifest says; refusing it")
                        writer.write(chunk)
                        if tee is not None:
                            tee.write(chunk)
                        if self.stop.is_set():
                            raise _Fatal("pull stopped")
                        now = time.monotonic()
                        if now - last_report > 0.2:
                            last_report = now
                            self.progress({"id": label, "status": "Downloading",
                                           "current": writer.size, "total": desc.size})
                if writer.size == desc.size:
                    return
                why = f"the download stopped at {writer.size} of {desc.size} bytes"
            except httpx.HTTPError as e:
                why = f"{type(e).__name__}: {e}"
            except (_Fatal, NotFound):
                raise
            except RegistryError as e:
                why = e.message
            failures += 1
            if failures > RETRIES:
                raise RegistryError(f"cannot download blob {desc.digest} of {self.ref} from "
                                    f"{self.endpoint.host} after {failures} attempts: {why}")
            self.progress({"id": label, "status": f"Retrying ({why})"})
            time.sleep(min(0.2 * 2 ** failures, 3.0))

    def _undo(self) -> None:
        """Remove what this pull added (nothing else references it: nothing was tagged)."""
        for diff_id in self.added_layers:
            remove_tree(self.store.layer_dir(diff_id))
        for digest in self.added_blobs:
            try:
                self.store.blob_path(digest).unlink()
            except FileNotFoundError:
                pass


class _StreamedUnpack:
    """Unpacks a layer in a thread from the chunks of its download (handed over through a
    short queue, not copied) into a private dir under ``tmp/``.  Its result counts only if
    the download completed (the blob's digest verified) and its diff_id is the config's;
    otherwise the caller unpacks the stored blob as usual.  A failed unpack drains the
    queue, so the download never blocks on it."""

    def __init__(self, store: Store, layer: LayerInfo, label: str):
        self.store, self.layer, self.label = store, layer, label
        self.work = store.tmp_dir("layer-")
        self.diff_id: str | None = None
        self.error: BaseException | None = None
        self.complete = False
        self._live = True
        self._ended = False                           # the end marker was taken
        self._chunks: queue.Queue = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._thread = threading.Thread(target=self._unpack, name="pull-unpack", daemon=True)
        self._thread.start()

    def _unpack(self) -> None:
        from minibox.store.layertar import extract_stream

        try:
            self.diff_id = extract_stream(self._next, self.layer.media_type, self.work,
                                          self.label)
        except BaseException as e:
            self.error = e
        while self._next():                           # drain: never block the download
            pass

    def _next(self) -> bytes:
        if self._ended:
            return b""
        chunk = self._chunks.get()
        self._ended = not chunk
        return chunk

    def write(self, chunk: bytes) -> None:
        if self._live and chunk:
            self._chunks.put(chunk)

    def abandon(self) -> None:
        """The download starts over: what was streamed is no longer the blob."""
        self._live = False

    def __enter__(self) -> "_StreamedUnpack":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.complete = exc_type is None and self._live
        self._chunks.put(b"")                         # the end of the stream
        self._thread.join()
        if not self.complete:
            self.diff_id = None
        if exc_type is not None or self.diff_id != self.layer.diff_id:
            remove_tree(self.work)
            self.work = None


def _touch(path) -> None:
    try:
        os.utime(path, follow_symlinks=False)
    except FileNotFoundError:
        pass


class _Fatal(RegistryError):
    """A download failure that retrying cannot fix."""

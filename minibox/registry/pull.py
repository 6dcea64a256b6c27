"""Pulling an image into the store.

The manifest (through an index, for the wanted platform) is checked first; then the config,
the layers and the manifest blobs are stored in parallel, each download verified against
its digest and size while it streams and resumed with a Range request after a dropped
connection.  Layers are stored as the registry serves them and unpacked on first use (a
build on the image, a run of it: ``Store.ensure_layer_dir``), as containerd's snapshotters
do: a pulled image is often only pushed or saved, and an unpack here would write every layer
twice.  Each new layer is still read once as it would be unpacked (``store/layercheck.py``:
tar safety, limits), so a hostile image is refused by the pull; its diff_id is checked by
the first unpack.  Each blob is fsynced as it is
committed, and ``blobs/`` once for the whole pull; the manifest is tagged last, so an image
appears in ``index.json`` only when everything it needs is there.  A failed pull removes the
blobs it added.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

from minibox.errors import NotFound, RegistryError, StoreError, UserError
from minibox.registry import credentials
from minibox.registry.client import Session
from minibox.registry.config import Endpoint, RegistryConfig
from minibox.registry.reference import Reference
from minibox.store import Store
from minibox.store.layercheck import check_layer
from minibox.store.layerinfo import LayerInfo
from minibox.store.manifests import (MAX_CONFIG_BYTES, Platform, kind_of, manifest_parts,
                                     parse_json, pick_platform)
from minibox.store.oci import INDEX_DIGEST, Descriptor, sha256_digest
from minibox.store.parallel import in_parallel

RETRIES = 4
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
            with hold(store.root) as held:            # a prune spares what we write
                return _Pull(store, ref, endpoint, login, config, platform, progress,
                             held).run()
        except (RegistryError, NotFound) as e:
            if not endpoint.mirror:
                raise
            progress({"status": f"mirror {endpoint.url} failed: {e.message}"})
    raise AssertionError("the registry itself is always the last endpoint")


class _Pull:
    def __init__(self, store: Store, ref: Reference, endpoint: Endpoint, creds, config,
                 platform: Platform, progress: Progress, held):
        self.store, self.ref, self.endpoint, self.held = store, ref, endpoint, held
        self.platform, self.progress = platform, progress
        self.session = Session(endpoint, ref.repository, creds, config)
        self.added_blobs: list[str] = []
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
        index_digest = index_media = None
        if kind_of(doc, media, what) == "index":
            index_digest, index_body, index_media = digest, body, doc.get("mediaType") or media
            child = pick_platform(doc, self.platform, f"image index of {self.ref}")
            what = f"{self.platform} manifest of {self.ref}"
            body, media, _ = self.session.get_manifest(child.digest)
            digest = self._check_digest(body, child.digest, None, what)
            doc = parse_json(body, what)
            if kind_of(doc, media, what) != "manifest":
                raise UserError(f"{what} is another index; nested indexes are not supported")
        config_desc, layers = manifest_parts(doc, what)
        if config_desc.size > MAX_CONFIG_BYTES:
            raise UserError(f"image config of {self.ref} is too large ({config_desc.size} "
                            f"bytes)")
        self.progress({"status": f"Digest: {digest}"})
        media_type = doc.get("mediaType") or media
        jobs = [partial(self._put_bytes, body, media_type, digest),
                partial(self._fetch, config_desc, "config")]
        if index_digest:
            jobs.append(partial(self._put_bytes, index_body, index_media, index_digest))
        seen = {config_desc.digest}
        for layer in layers:
            if layer.digest not in seen:              # a layer twice in one image: once
                seen.add(layer.digest)
                jobs.append(partial(self._layer, layer))
        in_parallel(_call, [(job,) for job in jobs], "pull", on_failure=self.stop.set)
        config = parse_json(self.store.read_blob(config_desc.digest),
                            f"image config of {self.ref}")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise UserError(f"image config of {self.ref} lists {len(diff_ids)} diff_ids for "
                            f"{len(layers)} layers")
        for desc, diff_id in zip(layers, diff_ids):   # well-formed, for their first use
            LayerInfo.from_descriptor(desc, diff_id)
        self.store.sync_blobs()                       # durable before the tag names them
        annotations = {INDEX_DIGEST: index_digest} if index_digest else {}
        tagged = Descriptor(digest, len(body), media_type, annotations,
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

    # -- blobs ----------------------------------------------------------------------------
    def _put_bytes(self, body: bytes, media_type: str, digest: str) -> None:
        """Store a manifest or index already fetched and verified."""
        if self._claim(digest):
            return
        desc = self.store.put_blob_bytes(body, media_type, sync_dir=False)
        assert desc.digest == digest
        with self.lock:
            self.added_blobs.append(digest)

    def _layer(self, desc: Descriptor) -> None:
        short = desc.digest[7:19]
        if self._fetch(desc, short):
            self.progress({"id": short, "status": "Verifying", "total": desc.size})
            check_layer(self.store.blob_path(desc.digest), desc.media_type,
                        f"layer {desc.digest} of {self.ref}")
            self.progress({"id": short, "status": "Pull complete", "total": desc.size})

    def _fetch(self, desc: Descriptor, label: str) -> bool:
        """Download one blob unless the store has it (False); verified by digest and
        size."""
        if self._claim(desc.digest):
            self.progress({"id": label, "status": "Already exists", "total": desc.size})
            return False
        writer = self.store.open_blob_writer(desc.media_type, expected_digest=desc.digest,
                                             expected_size=desc.size, sync_dir=False)
        try:
            self._download(desc, writer, label)
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
        return True

    def _download(self, desc: Descriptor, writer, label: str) -> None:
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
                    for chunk in resp.iter_raw():     # unbuffered: a cut keeps what came
                        if writer.size + len(chunk) > desc.size:
                            raise _Fatal(
                                f"blob {desc.digest} of {self.ref} is larger than the "
                                f"{desc.size} bytes its manifest says; refusing it")
                        writer.write(chunk)
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

    def _claim(self, digest: str) -> bool:
        """Does the store have the blob?  Then it is kept for us (space.hold.claim_blob)."""
        from minibox.space.hold import claim_blob

        return claim_blob(self.store.root, self.store.blob_path(digest))

    def _undo(self) -> None:
        """Remove what this pull added, unless another operation relies on it by now (a
        concurrent pull or load of the same image found it here)."""
        from minibox.space.prune import undo_blobs

        undo_blobs(self.store, self.added_blobs, self.held)


def _call(job: Callable[[], None]) -> None:
    job()


class _Fatal(RegistryError):
    """A download failure that retrying cannot fix."""

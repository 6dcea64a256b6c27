"""Pushing a local image: every blob the registry lacks (linked from another repository of
the same registry when one of our images came from there, uploaded otherwise), in
parallel, then the manifest last, so the tag never names an incomplete image."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from minibox.errors import UserError
from minibox.registry import credentials
from minibox.registry.config import RegistryConfig
from minibox.registry.reference import Reference, parse
from minibox.registry.session import open_session
from minibox.store import Store
from minibox.store.oci import Descriptor

PARALLEL = 4
_CHUNK = 1 << 20
Progress = Callable[[dict], None]


def push(store: Store, local: str, dest: Reference, config: RegistryConfig, *,
         creds: credentials.Credentials | None = None,
         progress: Progress | None = None) -> dict:
    progress = progress or (lambda event: None)
    if dest.digest:
        raise UserError(f"cannot push to a digest ({dest})", hint="push to a tag: NAME:TAG")
    image = store.resolve(local)
    manifest = store.read_blob(image.digest)
    media_type = image.manifest.get("mediaType") or image.descriptor.media_type
    blobs = [Descriptor.from_oci(image.manifest["config"]), *image.layers]
    sources = _mount_sources(store, dest, {b.digest for b in blobs})
    progress({"status": f"The push refers to {dest}"})
    with open_session(dest, config, creds) as session:
        def one(blob: Descriptor) -> None:
            _push_blob(store, session, blob, sources.get(blob.digest, []), progress)

        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="push") as pool:
            for future in [pool.submit(one, b) for b in blobs]:
                future.result()
        digest = session.put_manifest(dest.tag or "latest", manifest, media_type)
    progress({"status": f"{dest.tag}: digest: {image.digest} size: {len(manifest)}"})
    return {"reference": str(dest), "digest": digest or image.digest}


def _push_blob(store: Store, session, blob: Descriptor, sources: list[str],
               progress: Progress) -> None:
    short = blob.digest[7:19]
    if session.has_blob(blob.digest, "pull,push"):
        progress({"id": short, "status": "Layer already exists"})
        return
    for repo in sources:
        if session.mount_blob(blob.digest, repo):
            progress({"id": short, "status": f"Mounted from {repo}"})
            return
    path = store.blob_path(blob.digest)
    size = path.stat().st_size

    def chunks():
        sent = 0
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                sent += len(chunk)
                progress({"id": short, "status": "Pushing", "current": sent, "total": size})
                yield chunk

    progress({"id": short, "status": "Preparing"})
    session.upload_blob(blob.digest, size, chunks())
    progress({"id": short, "status": "Pushed"})


def _mount_sources(store: Store, dest: Reference, digests: set[str]) -> dict[str, list[str]]:
    """digest -> other repositories of ``dest``'s registry that an image we hold (and that
    is named for that registry) has it in: where a cross-repository mount may find it."""
    out: dict[str, list[str]] = {}
    for summary in store.list_images():
        try:
            ref = parse(summary.name)
        except UserError:
            continue
        if ref.registry != dest.registry or ref.repository == dest.repository:
            continue
        image = store.resolve(summary.name)
        have = {image.manifest["config"]["digest"], *(d.digest for d in image.layers)}
        for digest in digests & have:
            if ref.repository not in out.setdefault(digest, []):
                out[digest].append(ref.repository)
    return out

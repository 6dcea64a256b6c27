"""/images: list, inspect, remove; /blobs: content by digest (for workers on other hosts)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse

from minibox import refs
from minibox.errors import NotFound, UserError
from minibox.wire.api import ImageRef

router = APIRouter(tags=["images"])
Name = Annotated[ImageRef, Path(description="NAME[:TAG], NAME@DIGEST, a digest or an id")]
Digest = Annotated[str, Path(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<hex>")]


def _store(request: Request):
    services = request.app.state.services
    if services is not None and services.store is not None:
        return services.store
    from minibox.runtime.images import store_for      # an API without build services
    return store_for(request.app.state.settings.data_root)


@router.get("/images")
def list_images(request: Request) -> list[dict]:
    return [i.to_dict() if hasattr(i, "to_dict") else dict(i.__dict__)
            for i in _store(request).list_images()]


@router.get("/images/{name:path}/json")
def inspect_image(request: Request, name: Name) -> dict:
    """An image's record: id (config digest), digest (manifest), repo tags, created,
    platform, config, rootfs, layers, size, history; ``manifest`` and the whole OCI
    ``config`` too.  ``name``: NAME[:TAG], NAME@DIGEST, a digest or an id (prefix)."""
    store = _store(request)
    img = _find(store, name)
    tags = sorted(t.name for t in store.list_images() if t.digest == img.digest)
    cfg = img.config
    size = img.descriptor.size + int(img.manifest["config"].get("size", 0)) + \
        sum(d.size for d in img.layers)
    return {"id": img.manifest["config"]["digest"], "digest": img.digest,
            "name": img.name or (tags[0] if tags else img.digest), "repo_tags": tags,
            "created": cfg.get("created"), "architecture": cfg.get("architecture"),
            "os": cfg.get("os"), "size": size, "rootfs": cfg.get("rootfs"),
            "layers": [d.to_oci() for d in img.layers], "history": cfg.get("history") or [],
            "manifest": img.manifest, "config": cfg}


def _find(store, name: str):
    """The image ``name`` names; NotFound (never a UserError) when there is none."""
    try:
        return store.resolve(refs.normalize(name) if "@" not in name and
                             not name.startswith("sha256:") else name)
    except (NotFound, UserError):
        pass
    hexpart = name[7:] if name.startswith("sha256:") else name
    if 4 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart):
        hits = {}
        for summary in store.list_images():
            img = store.resolve(summary.name)
            if any(d.split(":")[-1].startswith(hexpart)
                   for d in (img.digest, img.manifest["config"]["digest"])):
                hits[img.digest] = img
        if len(hits) == 1:
            return next(iter(hits.values()))
    raise NotFound(f"no such image: {name}", hint="`minibox images` lists images")


@router.delete("/images/{name:path}")
def remove_image(request: Request, name: Name) -> dict:
    ref = refs.normalize(name)
    _store(request).untag(ref)
    return {"removed": ref}


def _digest(digest: str) -> str:
    hexpart = digest[7:]
    if not digest.startswith("sha256:") or len(hexpart) != 64 or \
            any(c not in "0123456789abcdef" for c in hexpart):
        raise UserError(f"invalid digest '{digest}'", hint="expected sha256:<64 hex digits>")
    return digest


@router.get("/blobs/{digest}")
def get_blob(request: Request, digest: Digest) -> FileResponse:
    """A blob by digest (build workers on other machines fetch layers this way)."""
    store = _store(request)
    if not store.has_blob(_digest(digest)):
        raise NotFound(f"blob {digest} not found")
    return FileResponse(store.blob_path(digest), media_type="application/octet-stream")


@router.head("/blobs/{digest}")
def head_blob(request: Request, digest: Digest) -> Response:
    found = _store(request).has_blob(_digest(digest))
    return Response(status_code=200 if found else 404)


@router.put("/blobs/{digest}", status_code=201)
async def put_blob(request: Request, digest: Digest) -> dict:
    """Store a blob a build worker made elsewhere; its content must hash to ``digest``."""
    from starlette.concurrency import run_in_threadpool

    store = _store(request)
    if store.has_blob(_digest(digest)):
        return {"digest": digest, "stored": False}
    import hashlib

    writer = store.open_blob_writer("application/octet-stream", expected_digest=digest)
    await run_in_threadpool(writer.__enter__)
    sent = hashlib.sha256()         # a body that is not the blob is bad input, not a 5xx
    try:
        async for chunk in request.stream():
            sent.update(chunk)
            await run_in_threadpool(writer.write, chunk)
        if "sha256:" + sent.hexdigest() != digest:
            raise UserError(f"the body does not hash to {digest}",
                            hint="PUT /blobs/DIGEST takes the blob's exact bytes")
    except BaseException as e:
        await run_in_threadpool(writer.__exit__, type(e), e, None)
        raise
    await run_in_threadpool(writer.__exit__, None, None, None)
    return {"digest": digest, "stored": True}

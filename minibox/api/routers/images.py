"""/images: list, inspect, remove; /blobs: content by digest (for workers on other hosts)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from minibox import refs
from minibox.errors import NotFound, UserError

router = APIRouter(tags=["images"])


def _store(request: Request):
    return request.app.state.services.store


@router.get("/images")
def list_images(request: Request) -> list[dict]:
    return [i.to_dict() if hasattr(i, "to_dict") else dict(i.__dict__)
            for i in _store(request).list_images()]


@router.get("/images/{name:path}/json")
def inspect_image(request: Request, name: str) -> dict:
    img = _store(request).resolve(refs.normalize(name))
    return {"name": refs.normalize(name), "digest": img.digest,
            "manifest": img.manifest, "config": img.config}


@router.delete("/images/{name:path}")
def remove_image(request: Request, name: str) -> dict:
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
def get_blob(request: Request, digest: str) -> FileResponse:
    """A blob by digest (build workers on other machines fetch layers this way)."""
    store = _store(request)
    if not store.has_blob(_digest(digest)):
        raise NotFound(f"blob {digest} not found")
    return FileResponse(store.blob_path(digest), media_type="application/octet-stream")


@router.head("/blobs/{digest}")
def head_blob(request: Request, digest: str) -> Response:
    found = _store(request).has_blob(_digest(digest))
    return Response(status_code=200 if found else 404)


@router.put("/blobs/{digest}", status_code=201)
async def put_blob(request: Request, digest: str) -> dict:
    """Store a blob a build worker made elsewhere; its content must hash to ``digest``."""
    from starlette.concurrency import run_in_threadpool

    store = _store(request)
    if store.has_blob(_digest(digest)):
        return {"digest": digest, "stored": False}
    writer = store.open_blob_writer("application/octet-stream", expected_digest=digest)
    await run_in_threadpool(writer.__enter__)
    try:
        async for chunk in request.stream():
            await run_in_threadpool(writer.write, chunk)
    except BaseException as e:
        await run_in_threadpool(writer.__exit__, type(e), e, None)
        raise
    await run_in_threadpool(writer.__exit__, None, None, None)
    return {"digest": digest, "stored": True}

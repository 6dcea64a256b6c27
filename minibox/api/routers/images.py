"""/images: list, inspect, remove; /blobs: content by digest (for workers on other hosts)."""

from __future__ import annotations

from fastapi import APIRouter, Request
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


@router.get("/blobs/{digest}")
def get_blob(request: Request, digest: str) -> FileResponse:
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise UserError(f"invalid digest '{digest}'")
    store = _store(request)
    if not store.has_blob(digest):
        raise NotFound(f"blob {digest} not found")
    return FileResponse(store.blob_path(digest), media_type="application/octet-stream")

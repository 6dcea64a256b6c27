"""/volumes: named volumes (create, ls, inspect, rm)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Request

from minibox.runtime.state import StateStore
from minibox.runtime.volumes import VolumeStore

router = APIRouter(prefix="/volumes", tags=["volumes"])


def _vols(request: Request) -> VolumeStore:
    return VolumeStore(request.app.state.settings.data_root)


@router.get("")
def list_(request: Request) -> list:
    return _vols(request).list()


@router.post("")
def create(request: Request, body: dict = Body(...)) -> dict:
    return _vols(request).create(str(body.get("name") or ""), body.get("labels") or {})


@router.get("/{name}")
def inspect(request: Request, name: str) -> dict:
    return _vols(request).inspect(name)


@router.delete("/{name}")
def remove(request: Request, name: str, force: bool = False) -> dict:
    """Remove a volume; refused while a container (running or not) uses it."""
    users = [] if force else _users(request, name)
    _vols(request).remove(name, users)
    return {"name": name, "removed": True}


def _users(request: Request, name: str) -> list[str]:
    store = StateStore(request.app.state.settings.data_root)
    out = []
    for rec in store.all():
        rec = store.load(rec.id, with_config=True)
        if any(m.get("kind") == "volume" and m.get("source") == name
               for m in (rec.config or {}).get("mounts") or []):
            out.append(rec.id)
    return out

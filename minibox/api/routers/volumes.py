"""/volumes: named and anonymous volumes (create, ls, inspect, rm)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from minibox.errors import NotFound
from minibox.runtime import volumes as volume_store
from minibox.runtime.state import StateStore
from minibox.runtime.volumes import VolumeStore
from minibox.wire.api import VolumeCreate, VolumeName

router = APIRouter(prefix="/volumes", tags=["volumes"])
Name = Annotated[VolumeName, Path(description="a volume's name")]


def _vols(request: Request) -> VolumeStore:
    return VolumeStore(request.app.state.settings.data_root)


def _states(request: Request) -> StateStore:
    return StateStore(request.app.state.settings.data_root)


@router.get("")
def list_(request: Request) -> list:
    """Every volume; anonymous ones of --rm containers that are gone are removed first."""
    vols = _vols(request)
    vols.reap(_states(request))
    return vols.list()


@router.post("")
def create(request: Request, body: VolumeCreate) -> dict:
    return _vols(request).create(body.name, body.labels)


@router.get("/{name}")
def inspect(request: Request, name: Name) -> dict:
    return _vols(request).inspect(name)


@router.delete("/{name}")
def remove(request: Request, name: Name, force: bool = False) -> dict:
    """Remove a volume; refused while a container (running or not) uses it, with or
    without ``force`` (as Docker); ``force`` only makes a missing volume no error."""
    vols = _vols(request)
    try:
        vols.remove(name, volume_store.users(_states(request), name))
    except NotFound:
        if not force:
            raise
        return {"name": name, "removed": False}
    return {"name": name, "removed": True}

"""/ping and /version: is the daemon there, and what is it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from minibox import __version__
from minibox.api.deps import ImageStoreDep

router = APIRouter(tags=["system"])


@router.get("/ping", response_class=PlainTextResponse)
def ping() -> str:
    return "Daemon is running"


@router.get("/version")
def version() -> dict:
    return {"version": __version__, "api": 1}


class RegistryLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    server: str = Field(min_length=1, max_length=255, description="registry host[:port]")
    username: str = Field(min_length=1, max_length=512)
    password: str = Field(min_length=1, max_length=8192)
    insecure_registries: list[str] = Field(default_factory=list, max_length=32)


@router.post("/registry/login")
def registry_login(body: RegistryLogin) -> dict:
    """Check credentials against a registry (its /v2/ root, answering its challenge).
    Nothing is stored here: the client keeps its credentials."""
    from minibox.registry.session import login

    login(body.server, body.username, body.password, tuple(body.insecure_registries))
    return {"status": "Login Succeeded"}


@router.get("/system/df")
def system_df(request: Request, store: ImageStoreDep, verbose: bool = False) -> dict:
    """Disk use by images, containers, volumes and the build cache (bytes on disk)."""
    from minibox.space.usage import df
    return df(store, verbose=verbose)


class PruneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    all: bool = Field(False, description="also images no container uses, not only dangling "
                                         "content")
    build_cache: bool = Field(False, description="also the build cache")
    volumes: bool = Field(False, description="also volumes no container uses")


@router.post("/system/prune")
def system_prune(request: Request, store: ImageStoreDep, body: PruneRequest) -> dict:
    """Remove what nothing references; ``freed`` is the bytes of disk the removals freed."""
    from minibox.space.prune import prune
    return prune(store, all_images=body.all, build_cache=body.build_cache,
                 volumes=body.volumes).to_dict()


@router.get("/system/info")
def system_info(request: Request, store: ImageStoreDep) -> dict:
    """The data root, the drivers in use, counts and versions."""
    from minibox.space.info import info
    return info(store, request.app.state.settings)

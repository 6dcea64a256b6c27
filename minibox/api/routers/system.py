"""/ping and /version: is the daemon there, and what is it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from minibox import __version__

router = APIRouter(tags=["system"])


@router.get("/ping", response_class=PlainTextResponse)
def ping() -> str:
    return "Daemon is running"


@router.get("/version")
def version() -> dict:
    return {"version": __version__, "api": 1}


class RegistryLogin(BaseModel):
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

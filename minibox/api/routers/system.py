"""/ping and /version: is the daemon there, and what is it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from minibox import __version__

router = APIRouter(tags=["system"])


@router.get("/ping", response_class=PlainTextResponse)
def ping() -> str:
    return "Daemon is running"


@router.get("/version")
def version() -> dict:
    return {"version": __version__, "api": 1}

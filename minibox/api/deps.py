"""FastAPI dependencies shared by the routers: settings, the store, auth."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from minibox.config import Settings
from minibox.errors import Unauthorized


# Both are ``async def`` on purpose: they never block, and FastAPI runs a plain ``def``
# dependency in the thread pool, a thread hop per request (require_token is on every route).
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def require_token(request: Request) -> None:
    """With MINIBOX_API_TOKEN set, every route needs ``Authorization: Bearer <token>``."""
    token = request.app.state.settings.api_token
    if not token:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    if not given:
        given = request.headers.get("x-api-token", "")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("unauthorized: this daemon requires an API token",
                           hint="set MINIBOX_API_TOKEN to the daemon's token")

"""FastAPI dependencies shared by the routers: settings, the store, auth."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request

from minibox.config import Settings
from minibox.errors import Unauthorized

log = logging.getLogger("minibox.api.auth")

# Open to anyone who can connect: a health check needs no credential, and says nothing but
# that the daemon runs.  (/docs and /openapi.json are outside the app's dependencies.)
OPEN_PATHS = frozenset({"/ping"})


# Both are ``async def`` on purpose: they never block, and FastAPI runs a plain ``def``
# dependency in the thread pool, a thread hop per request (require_token is on every route).
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def require_token(request: Request) -> None:
    """Every route but OPEN_PATHS needs a credential:

    * over a unix socket, the socket's file mode (0660 root:minibox) already decided who
      could connect: nothing more is asked;
    * over TLS with client certificates required (MINIBOX_TLS_CLIENT_CA), the handshake
      verified one: nothing more is asked;
    * otherwise ``Authorization: Bearer <token>`` (or ``X-API-Token``), compared in constant
      time, unless MINIBOX_API_AUTH=none (loopback only, see daemon/credentials.py).

    A refused request is logged with its peer and path, never with what it sent."""
    scope = request.scope
    if scope["path"] in OPEN_PATHS:
        return
    server = scope.get("server")
    if server is not None and server[1] is None:        # uvicorn: a unix socket has no port
        return
    settings: Settings = request.app.state.settings
    if settings.tls_client_ca and scope.get("scheme") == "https":
        return
    if settings.api_auth == "none":
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    given = given or request.headers.get("x-api-token", "").strip()
    token = settings.api_token or ""
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return
    client = scope.get("client")
    log.warning("refused %s %s from %s: %s", scope.get("method"), scope["path"],
                f"{client[0]}:{client[1]}" if client else "?",
                "a wrong API token" if given else "no API token")
    raise Unauthorized("unauthorized: this request needs the daemon's API token"
                       if not given else "unauthorized: the API token is wrong",
                       hint="send `Authorization: Bearer <token>`; the token is in "
                            f"{settings.token_file} on the daemon's machine")

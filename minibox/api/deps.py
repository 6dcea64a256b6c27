"""FastAPI dependencies shared by the routers: settings, the daemon's services, the image
store and the containers' state store, the Celery client, auth.  Routers take these as
``Annotated`` parameters (``ImageStoreDep`` ...); their own helpers call the plain functions
(``image_store(request)`` ...).  What an API without the daemon's services (a test's) uses
instead is decided here, once."""

from __future__ import annotations

import hmac
import logging
from functools import lru_cache
from typing import Annotated, Any

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


def services(request: Request):
    """The daemon's live state (build jobs, the image store, the Celery client); None in an
    API run without them."""
    return request.app.state.services


def image_store(request: Request):
    """The image store: the daemon's, or one on the data root."""
    s = services(request)
    if s is not None and s.store is not None:
        return s.store
    from minibox.runtime.images import store_for
    return store_for(request.app.state.settings.data_root)


def state_store(request: Request):
    """The containers' records on the data root."""
    from minibox.runtime.state import StateStore
    return StateStore(request.app.state.settings.data_root)


def celery_client(request: Request):
    """The Celery app the runtime verbs are sent through: the daemon's, or one of our own."""
    s = services(request)
    if s is not None and s.celery is not None:
        return s.celery
    return _default_celery(str(request.app.state.settings.data_root))


@lru_cache(maxsize=4)
def _default_celery(_root: str):
    from minibox.workers.celery_app import make_celery
    return make_celery()


async def get_services(request: Request):
    return services(request)


async def get_image_store(request: Request):
    return image_store(request)


async def get_state_store(request: Request):
    return state_store(request)


ServicesDep = Annotated[Any, Depends(get_services)]
ImageStoreDep = Annotated[Any, Depends(get_image_store)]
StateStoreDep = Annotated[Any, Depends(get_state_store)]


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

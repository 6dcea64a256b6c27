"""The FastAPI application: one router per resource, settings in one place."""

from __future__ import annotations

import importlib

from fastapi import Depends, FastAPI

from minibox import __version__
from minibox.api import errors
from minibox.api.deps import require_token
from minibox.api.limits import BodyLimit
from minibox.config import Settings
from minibox.wire.api import ERROR_RESPONSES

# (module, attribute) of every router; each module owns one resource.
ROUTERS = [
    "minibox.api.routers.system",
    "minibox.api.routers.builds",
    "minibox.api.routers.images",
    "minibox.api.routers.containers",
    "minibox.api.routers.volumes",
    "minibox.api.routers.networks",
    "minibox.api.routers.workers",
]


def create_app(settings: Settings | None = None, *, services=None) -> FastAPI:
    """Build the app.  ``services`` is the daemon's live state (build jobs, Celery client)."""
    app = FastAPI(title="miniboxd", version=__version__,
                  dependencies=[Depends(require_token)], responses=ERROR_RESPONSES)
    app.state.settings = settings or Settings.from_env()
    app.state.services = services
    errors.install(app)
    app.add_middleware(BodyLimit, settings=app.state.settings)
    for name in ROUTERS:
        module = importlib.import_module(name)
        app.include_router(module.router)
    return app

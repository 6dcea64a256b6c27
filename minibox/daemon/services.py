"""The daemon's live state, shared by the API routers (``request.app.state.services``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minibox.config import Settings


@dataclass
class Services:
    settings: Settings
    celery: Any = None        # celery.Celery client bound to the farm's broker
    redis: Any = None         # redis.Redis on the same server (events, locks, job records)
    store: Any = None         # minibox.store.Store over the data root
    builds: Any = None        # minibox.builder.jobs.BuildManager

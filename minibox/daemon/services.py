"""The daemon's live state, shared by the API routers (``request.app.state.services``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from minibox.config import Settings

if TYPE_CHECKING:       # the types only: the API's tests build Services without some of them
    from celery import Celery
    from redis import Redis

    from minibox.builder.jobs import BuildManager
    from minibox.store import Store


@dataclass
class Services:
    settings: Settings
    celery: Celery | None = None         # the Celery client bound to the farm's broker
    redis: Redis | None = None           # a client of the same server (events, locks, jobs)
    store: Store | None = None           # the OCI store over the data root
    builds: BuildManager | None = None   # build jobs: submit, follow, cancel

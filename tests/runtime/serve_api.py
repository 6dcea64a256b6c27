"""The API for the tests: create_app with a Celery client, under uvicorn (no workers)."""

from __future__ import annotations

import uvicorn

from minibox.api.app import create_app
from minibox.config import Settings
from minibox.daemon.services import Services
from minibox.workers.celery_app import make_celery


def main() -> None:
    settings = Settings.from_env()
    services = Services(settings=settings, celery=make_celery(settings))
    host, _, port = settings.http_addr.rpartition(":")
    uvicorn.run(create_app(settings, services=services), host=host, port=int(port),
                log_level="warning")


if __name__ == "__main__":
    main()

"""The API for the tests: create_app with a Celery client, served as miniboxd serves it (the
token file, the unix socket beside TCP, the same auth), without the daemon's workers."""

from __future__ import annotations

from minibox.api.app import create_app
from minibox.config import Settings
from minibox.daemon import credentials, listen
from minibox.daemon.services import Services
from minibox.workers.celery_app import make_celery


def main() -> None:
    settings = Settings.from_env()
    gid = credentials.api_group()
    settings.api_token = credentials.load_token(settings, gid)
    listeners = listen.open_listeners(settings, gid)
    services = Services(settings=settings, celery=make_celery(settings))
    try:
        listen.serve(create_app(settings, services=services), listeners)
    finally:
        listeners.close()


if __name__ == "__main__":
    main()

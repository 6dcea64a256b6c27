"""The Celery application shared by miniboxd (the client) and every worker.

Two queues: ``build`` (prefork pool, many processes, content-addressed tasks that are safe to
redo: acks_late + reject_on_worker_lost) and ``runtime`` (one process that owns containers;
its tasks are not idempotent, so they are acked on receipt).  Prefetch 1 everywhere, so a
long block never hides a waiting one behind it.
"""

from __future__ import annotations

from celery import Celery

from minibox.config import Settings
from minibox.wire.queues import TASK_ROUTES


def make_celery(settings: Settings | None = None) -> Celery:
    from minibox.workers import transport

    transport.install()          # one Redis client object per pool, not one per command
    settings = settings or Settings.from_env()
    url = settings.effective_broker_url()
    app = Celery("minibox", broker=url, backend=url,
                 include=["minibox.workers.build_tasks", "minibox.workers.runtime_tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        task_acks_late=False,
        task_track_started=True,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        # task events only from the build workers (`-E` on their command line): Flower
        # watches those; the runtime worker's tasks are a container start each, and three
        # event publishes per task would be a tenth of it
        worker_send_task_events=False,
        task_send_sent_event=False,
        task_routes=TASK_ROUTES,
    )
    app.minibox_settings = settings
    return app


app = make_celery()

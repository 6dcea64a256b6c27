"""Build tasks: thin wrappers over minibox.build.executor, run by the prefork build pool.

Content-addressed, so acks_late + reject_on_worker_lost is safe: a block whose worker was
killed is delivered again and redone (or found in the cache).
"""

from __future__ import annotations

from functools import lru_cache

from minibox.workers.celery_app import app


@lru_cache(maxsize=1)
def _context():
    from minibox.redisconn import connect
    from minibox.store import Store

    settings = app.minibox_settings
    return Store(settings.data_root), connect(settings), settings


@app.task(name="minibox.build.block", acks_late=True, reject_on_worker_lost=True)
def build_block(payload: dict) -> dict:
    from minibox.build.executor import execute_block

    store, redis, settings = _context()
    return execute_block(payload, store=store, redis=redis, settings=settings)


@app.task(name="minibox.build.ping")
def ping() -> str:
    return "pong"

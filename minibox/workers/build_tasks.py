"""Build tasks: thin wrappers over minibox.builder.executor, run by the prefork build pool.

Content-addressed, so acks_late + reject_on_worker_lost is safe: a block whose worker was
killed is delivered again and redone (or found in the cache).

The modules a block needs are imported here, in the pool's parent, so every forked child
starts warm (the first block on a fresh worker does not pay for imports), and each child
opens its Redis connection and store and starts its sandbox zygote as soon as it is forked.
"""

from __future__ import annotations

import gc
import logging
import os
from functools import lru_cache

from celery.signals import worker_process_init

import minibox.builder.executor  # noqa: F401  (preload for the forked pool children)
import minibox.sandbox  # noqa: F401
import minibox.store.layertar  # noqa: F401
from minibox.errors import MiniBoxError
from minibox.wire.queues import BUILD_BLOCK, BUILD_PING
from minibox.workers.celery_app import app
from minibox.workers.result_backend import started_record

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _context():
    from minibox.redisconn import connect
    from minibox.store import Store

    settings = app.minibox_settings
    return Store(settings.data_root), connect(settings), settings


@worker_process_init.connect
def _warm(**_):
    _context.cache_clear()
    store, redis, settings = _context()
    redis.ping()
    from minibox.builder.executor import sweep_dead

    sweep_dead(store)             # the dirs of a pool process that died (this one replaces it)
    try:                          # the build network's namespaces, ready for the first block
        from minibox.net import buildnet

        buildnet.pool(settings).warm()
    except MiniBoxError as e:     # a block on the build network will say so
        log.warning("build network not ready: %s", e)
    if not os.environ.get("MINIBOX_NO_ZYGOTE"):
        from minibox.sandbox import zygote

        try:                      # the small process blocks' sandboxes are forked from
            zygote.handle().ensure()
        except OSError as e:      # they fork from this process instead
            log.warning("no sandbox zygote (sandboxes fork from the worker): %s", e)
    # what is loaded now lives as long as the process: out of every later collection, and
    # a block's sandbox (forked from here) does not copy the pages a collection would touch
    gc.collect()
    gc.freeze()


# ignore_result: the block's result goes to the daemon on its job's event stream, and its
# STARTED state with the block's first round trip (result_backend.started_record); Celery
# stores only what the daemon cannot learn otherwise: a task that raised (FAILURE)
@app.task(name=BUILD_BLOCK, bind=True, acks_late=True, reject_on_worker_lost=True,
          ignore_result=True, store_errors_even_if_ignored=True)
def build_block(self, payload: dict) -> dict:
    """A BlockJob's wire dict in, its BlockResult's wire dict out."""
    from minibox.builder.executor import execute_block
    from minibox.wire.build import BlockJob

    store, redis, settings = _context()
    return execute_block(BlockJob.from_wire(payload), store=store, redis=redis,
                         settings=settings, started=started_record(self)).to_wire()


@app.task(name=BUILD_PING)
def ping() -> str:
    return "pong"

"""The result backend of the runtime worker: Celery's Redis backend, minus a read per task.

``BaseKeyValueStoreBackend._store_result`` GETs a task's stored state before every SET, so
that a task delivered twice (a lost worker's acks_late message, redelivered) cannot
overwrite a SUCCESS already stored.  The runtime worker's tasks cannot be delivered twice:
they are acked on receipt and its transport has no ack emulation (see workers/main.py), so
nothing is ever restored to the queue; and they do not track STARTED, so a task's result
key is written exactly once.  The GET is a Redis round trip per container start for
nothing; this backend stores the same meta with the same SET (+ PUBLISH) without it.

The SET and the PUBLISH still go out in one pipeline (one round trip, in that order, on one
connection), just without the MULTI/EXEC around them (a waiter that reads the key between
the two sees the final result, as it would after the EXEC), and the SET with EX instead of
SETEX (the same command to Redis; redis-py 8 warns on every SETEX call).

Selected for the runtime worker only (``use_for``).  The build workers keep Celery's
backend but barely use it: a block's result comes to the daemon on its job's event stream,
so ``build_block`` stores none (``ignore_result``; a task that raised still stores its
FAILURE, which the daemon's poll reads), and its STARTED state, which the daemon's
lost-worker check reads, goes out with the block's first round trip (``started_record``)
instead of costing Celery's GET + SET + PUBLISH.

The daemon's backend (``use_for_daemon``): Celery's Redis backend SUBSCRIBEs to a task's
result channel as it sends the task, for a ``get()`` that may follow.  The daemon waits with
``get()`` on the runtime worker's tasks only (runtime.remote.call, which asks for that
subscription itself, before it sends); a build block's result comes on its job's event
stream and the scheduler reads a block's state with a plain GET (``AsyncResult.state``).  So
every block sent was a SUBSCRIBE and, when its AsyncResult was dropped, an UNSUBSCRIBE on
the daemon's pubsub connection, whose confirmations nobody read: no more.
"""

from __future__ import annotations

import os

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

#: the URL schemes (Celery backend aliases) served by RedisBackend
_ALIASES = ("redis", "rediss")


class RuntimeRedisBackend(RedisBackend):
    """RedisBackend that stores a result without first reading the stored one."""

    def _store_result(self, task_id, result, state, traceback=None, request=None,
                      **kwargs):
        meta = self._get_result_meta(result=result, state=state, traceback=traceback,
                                     request=request)
        meta["task_id"] = bytes_to_str(task_id)
        try:
            self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)
        except BackendStoreError as ex:
            raise BackendStoreError(str(ex), state=state, task_id=task_id) from ex
        return result

    def _set(self, key, value, expires=None):
        if expires is None:
            expires = self.expires
        with self.client.pipeline(transaction=False) as pipe:
            if expires:
                pipe.set(key, value, ex=expires)    # = SETEX, which redis-py 8 deprecates
            else:
                pipe.set(key, value)
            pipe.publish(key, value)
            pipe.execute()


class DaemonRedisBackend(RedisBackend):
    """RedisBackend that subscribes to a task's result only when asked (``watch``)."""

    def on_task_call(self, producer, task_id):
        pass                        # Celery's: subscribe to every task sent

    def watch(self, task_id: str) -> None:
        """Subscribe to ``task_id``'s result before sending it, for a ``get()`` to come."""
        super().on_task_call(None, task_id)


def started_record(task) -> tuple[str, bytes, int]:
    """The STARTED result of the task ``task`` is running (as Celery's tracer writes it for
    a task that tracks its start): (the result key, its value, its TTL in seconds), for a
    SET the task sends itself.  Nothing is published: nobody waits on a build task."""
    backend, request = task.backend, task.request
    meta = backend._get_result_meta(result={"pid": os.getpid(), "hostname": request.hostname},
                                    state=states.STARTED, traceback=None, request=request)
    meta["task_id"] = request.id
    return (bytes_to_str(backend.get_key_for_task(request.id)), backend.encode(meta),
            int(backend.expires or 86400))


def use_for(app, backend: str = "RuntimeRedisBackend") -> None:
    """Make ``app`` build its (per-thread) result backends from ``backend`` (a class of
    this module) when its result_backend is a Redis URL.  Call before the first use of
    ``app.backend``."""
    overrides = dict(app.loader.override_backends)
    for alias in _ALIASES:
        overrides[alias] = f"{__name__}:{backend}"
    app.loader.override_backends = overrides


def use_for_daemon(app) -> None:
    use_for(app, "DaemonRedisBackend")

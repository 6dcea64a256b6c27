"""The farm's Celery transport: kombu's Redis transport, minus a client object per command.

kombu's Redis channel makes a new ``redis.Redis`` for every command it sends outside its
consuming connection (``conn_or_acquire``): each task the daemon sends, each task event a
build worker publishes (three per block for Flower) and each ack.  ``redis.Redis()`` builds
its table of response callbacks every time: about a sixth of the build worker's main
process's CPU went there.  This channel makes that client once per connection pool and
reuses it (a Redis client is a handle on its pool: every command takes a connection from
the pool and gives it back, from any thread); a new pool (after a fork, a reconnect) gets a
new client.

``install()`` makes it the transport of the ``redis`` and ``rediss`` URL schemes
(``redis+socket://`` included) in this process; ``celery_app.make_celery`` calls it.
"""

from __future__ import annotations

from contextlib import contextmanager

from kombu import transport as _transports
from kombu.transport import redis as _redis

#: the URL schemes (kombu transport aliases) this transport serves
_ALIASES = ("redis", "rediss")


class Channel(_redis.Channel):
    _shared = None              # (the pool, the client on it)

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool
        if self._shared is None or self._shared[0] is not pool:
            self._shared = (pool, self._create_client())
        yield self._shared[1]


class Transport(_redis.Transport):
    Channel = Channel


def install() -> None:
    """Serve the Redis URL schemes with this module's Transport in this process."""
    for alias in _ALIASES:
        _transports.TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
        _transports._transport_cache.pop(alias, None)

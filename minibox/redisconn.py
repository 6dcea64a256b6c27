"""One way to open the farm's Redis from a broker URL (Celery's and redis-py's spellings
differ for unix sockets), with connection errors translated at this boundary."""

from __future__ import annotations

from minibox.config import Settings


def redis_url(broker_url: str) -> str:
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url[len("redis+socket://"):]
    return broker_url


def connect(settings: Settings | None = None, url: str | None = None):
    import redis

    settings = settings or Settings.from_env()
    return redis.Redis.from_url(redis_url(url or settings.effective_broker_url()),
                                health_check_interval=30)

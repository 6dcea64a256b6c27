"""Redis key names shared by the daemon, the build workers and the API, and the lock's lease.

One place for them, so a worker and the daemon can never disagree on where a job's cancel
flag or a block's lock lives.
"""

from __future__ import annotations

#: sorted set of build job ids, scored by creation time
BUILDS_INDEX = "minibox:builds"
#: hash: url, data_root, pid of the farm's daemon (remote build workers check it at start)
DAEMON_RECORD = "minibox:daemon"

#: set of the build workers' names that advertised themselves (wire.workers.WorkerAd)
WORKERS_INDEX = "minibox:workers"
#: a worker's advertisement lives this long in seconds unless refreshed (every
#: WORKER_TTL / 5): Redis expires it, so a dead or cut-off worker drops out by itself and
#: no one compares clocks
WORKER_TTL = 10.0

#: a block lock's lease in seconds; its holder refreshes it every LOCK_TTL / 3, and the
#: daemon declares a STARTED block lost when its lock has been gone for 3 x LOCK_TTL
LOCK_TTL = 6.0


def job_record_key(job_id: str) -> str:
    """Hash: a build job's record (id, tag, status, times, error, owning daemon)."""
    return f"minibox:build:{job_id}"


def job_events_key(job_id: str) -> str:
    """Stream: a build job's events (builder.events.EventLog; wire.events)."""
    return f"minibox:build:{job_id}:events"


def job_cancel_key(job_id: str) -> str:
    """String: set ("cancelled" or "failed") when a job's running blocks must stop."""
    return f"minibox:build:{job_id}:cancel"


def job_tasks_key(job_id: str) -> str:
    """Set: the Celery task ids a job sent (revoked on cancel)."""
    return f"minibox:build:{job_id}:tasks"


def job_hosts_key(job_id: str) -> str:
    """Set: the hosts whose build workers ran blocks of a job (`minibox builds ls`)."""
    return f"minibox:build:{job_id}:hosts"


def block_lock_key(cache_key: str) -> str:
    """Lock: held while a block of this cache key executes (one execution per key)."""
    return f"minibox:lock:block:{cache_key}"


def block_cache_key(cache_key: str) -> str:
    """String (JSON): the farm-wide cache entry of a block (builder.cache.BlockCache)."""
    return f"minibox:cache:{cache_key}"


#: SCAN pattern of every farm-wide cache entry
BLOCK_CACHE_PATTERN = block_cache_key("*")


def worker_key(name: str) -> str:
    """String (JSON, expiring): a live build worker's advertisement (wire.workers.WorkerAd)."""
    return f"minibox:worker:{name}"

"""A block's per-key Redis lock on the worker, and the block's first round trip to Redis.

One execution per cache key across the farm: the worker holds ``block_lock_key(key)`` (a
redis-py ``Lock``: a token with a lease of LOCK_TTL) while the block runs, a thread per
process keeps every lock it holds alive, and a dead holder's lock expires.

A block's first round trip (``begin``) is one pipeline: the job's cancel flag, the task's
STARTED state (what the daemon's lost-worker check reads), the lock taken without waiting,
and the farm-wide cache entry, read after the lock is taken (whoever held it before wrote
the entry before letting go, in its last round trip).  Only when another build holds the key
does the block wait for the lock (and read the entry again) the slow way.  The lock is let
go in the block's last pipeline (``release_in``), after the cache entry and events.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from redis.lock import Lock

from minibox.errors import Cancelled
from minibox.wire.keys import LOCK_TTL, block_cache_key, block_lock_key, job_cancel_key


class _Refresher:
    """One thread per worker process keeps every block lock it holds alive (a dead holder's
    lock expires); a thread started and joined per block cost more than the block's own
    Redis calls."""

    def __init__(self):
        self.pid = os.getpid()
        self.locks: set = set()
        self.mutex = threading.Lock()
        threading.Thread(target=self._run, daemon=True, name="lock-refresh").start()

    def _run(self) -> None:
        while True:
            time.sleep(LOCK_TTL / 3)
            with self.mutex:
                locks = list(self.locks)
            for lock in locks:
                try:
                    lock.reacquire()
                except Exception:   # lost or Redis gone: the block finishes; nothing to do
                    with self.mutex:
                        self.locks.discard(lock)


_refresher: _Refresher | None = None
_refresher_lock = threading.Lock()


@dataclass
class Begun:
    """What the block's first round trip found: the lock (held unless cancelled), whether
    the job was cancelled, the farm-wide cache entry's raw JSON (None when not read or
    absent), and whether the block waited for another holder of the lock (then the entry
    was not read: the caller reads it now)."""

    lock: Lock
    cancelled: bool
    shared_entry: bytes | None = None
    waited: bool = False


def begin(redis, job_id: str, key: str, *, read_cache: bool, started=None,
          should_cancel=None) -> Begun:
    """Take the key's lock, in one round trip with the cancel flag, the ``started`` record
    (key, value, ttl: a SET, when given) and (``read_cache``) the farm-wide cache entry.
    When another holds the lock, wait for it (reading the cancel flag through
    ``should_cancel`` as it waits: Cancelled); the entry is then the caller's to read.
    The lock is released here when the job was cancelled."""
    lock = redis.lock(block_lock_key(key), timeout=LOCK_TTL, thread_local=False)
    token = uuid.uuid1().hex.encode()
    pipe = redis.pipeline(transaction=False)
    pipe.exists(job_cancel_key(job_id))
    if started is not None:
        skey, value, ttl = started
        pipe.set(skey, value, ex=ttl)
    pipe.set(lock.name, token, nx=True, px=int(LOCK_TTL * 1000))
    if read_cache:
        pipe.get(block_cache_key(key))
    replies = pipe.execute()
    cancelled, taken = bool(replies[0]), bool(replies[2 if started is not None else 1])
    entry = replies[-1] if read_cache else None
    if taken:
        lock.local.token = token
    if cancelled:
        if taken:
            _release(lock)
        return Begun(lock, True)
    if taken:
        return Begun(lock, False, entry)
    while not lock.acquire(blocking=True, blocking_timeout=0.25):
        if should_cancel is not None and should_cancel():
            raise Cancelled("build cancelled")
    return Begun(lock, False, waited=True)


def release_in(pipe, lock: Lock) -> None:
    """Let go of ``lock`` as the last command of ``pipe`` (only if it is still ours: the
    token is compared in Redis); ``held`` then does not release it again."""
    token, lock.local.token = lock.local.token, None
    if token is not None:
        pipe.eval(Lock.LUA_RELEASE_SCRIPT, 1, lock.name, token)


def _release(lock: Lock) -> None:
    try:
        lock.release()
    except Exception:      # expired, taken over, or Redis gone: nothing of ours to free
        pass


@contextmanager
def held(lock: Lock):
    """Keep a taken lock alive while the block runs, then release it (unless its release
    went out with the block's last pipeline, ``release_in``)."""
    global _refresher
    with _refresher_lock:
        if _refresher is None or _refresher.pid != os.getpid():   # a forked pool child
            _refresher = _Refresher()
        refresher = _refresher
    with refresher.mutex:
        refresher.locks.add(lock)
    try:
        yield
    finally:
        with refresher.mutex:
            refresher.locks.discard(lock)
        if lock.local.token is not None:
            _release(lock)

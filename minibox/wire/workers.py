"""A build worker's advertisement (worker -> Redis -> daemon): what it builds for and how
much at once.  Stored at ``wire.keys.worker_key(name)`` with Redis's own expiry
(``WORKER_TTL``), so only live workers are found; the daemon routes a block to the queue of
its build's platform and refuses a platform no live worker advertises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from minibox.wire.codec import from_wire, to_wire


@dataclass(frozen=True)
class WorkerAd:
    name: str               # the Celery worker's name (build@host, or -n NAME)
    host: str               # the machine's hostname
    platform: str           # OS/ARCH[/VARIANT], e.g. linux/amd64
    queue: str              # wire.queues.build_queue(platform): the queue it consumes
    concurrency: int        # blocks it runs at once (pool processes)
    pid: int                # the pool's parent process, on that host

    def to_wire(self) -> dict:
        return to_wire(self)

    @classmethod
    def from_wire(cls, data: dict) -> "WorkerAd":
        return from_wire(cls, data, "worker advertisement")

    def encode(self) -> str:
        return json.dumps(self.to_wire(), sort_keys=True)

    @classmethod
    def decode(cls, raw: bytes | str) -> "WorkerAd":
        return cls.from_wire(json.loads(raw))

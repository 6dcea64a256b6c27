"""A build worker's heartbeat: it advertises its platform, capacity and host in Redis
(builder.platforms.advertise) from the moment it is ready to take blocks, every
WORKER_TTL / 5, and withdraws at a clean stop.  A worker that dies, or whose machine is cut
off, stops refreshing and its advertisement expires in Redis: the daemon stops routing to a
platform nobody serves."""

from __future__ import annotations

import logging
import os
import socket
import threading

from minibox.wire.keys import WORKER_TTL
from minibox.wire.queues import build_queue
from minibox.wire.workers import WorkerAd

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, settings, name: str, platform: str, concurrency: int):
        self.settings = settings
        self.ad = WorkerAd(name=name, host=socket.gethostname(), platform=platform,
                           queue=build_queue(platform), concurrency=concurrency,
                           pid=os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self) -> None:
        """Beat from Celery's worker_ready to its worker_shutdown (in the pool's parent)."""
        from celery.signals import worker_ready, worker_shutdown

        worker_ready.connect(lambda **_: self.start(), weak=False)
        worker_shutdown.connect(lambda **_: self.stop(), weak=False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")
        self._thread.start()

    def _run(self) -> None:
        from minibox.builder.platforms import advertise
        from minibox.redisconn import connect

        redis = connect(self.settings)
        while True:
            try:
                advertise(redis, self.ad)
            except Exception as e:        # the broker is away: beat again, it may return
                log.warning("heartbeat: cannot advertise %s: %s", self.ad.name, e)
            if self._stop.wait(WORKER_TTL / 5):
                return

    def stop(self) -> None:
        from minibox.builder.platforms import withdraw
        from minibox.redisconn import connect

        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            withdraw(connect(self.settings), self.ad.name)
        except Exception as e:
            log.warning("heartbeat: cannot withdraw %s: %s", self.ad.name, e)

"""Build workers started by a test beside a farm's daemon: on the daemon's data root or their
own (as on another machine), of the host's platform or another, on this machine's network or
inside a network namespace of their own (``tests/farm/netfarm.py``).  Each one runs in its
own session, so the test can end it (and every process of its pool) by its process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.netkit import wait_until


class Worker:
    def __init__(self, proc: subprocess.Popen, name: str, root: Path, log: Path):
        self.proc, self.name, self.root, self.log = proc, name, root, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def runs(self, pid: int) -> bool:
        """True when ``pid`` (a block_start event's worker pid) is one of this worker's."""
        try:
            return os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def end(self, sig: int = signal.SIGTERM) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the whole worker: its pool's parent, every pool process, their sandboxes."""
        self.end(signal.SIGKILL)

    def tail(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""


def start_worker(farm, name: str, *, concurrency: int = 1, root: Path | None = None,
                 platform: str | None = None, broker: str | None = None,
                 prefix: tuple[str, ...] = (), env: dict | None = None) -> Worker:
    """A build worker on ``farm``'s Redis (``broker``: another URL to it); on its own data
    root when ``root`` is given; ``prefix``: e.g. ``ip netns exec NS`` to run it elsewhere."""
    root = root or farm.root
    e = dict(farm.env, MINIBOX_DATA_ROOT=str(root), MINIBOX_API_TOKEN=farm.token(),
             MINIBOX_BROKER_URL=broker or f"redis+socket://{farm.root}/run/redis.sock")
    e.update(env or {})
    argv = [*prefix, sys.executable, "-m", "minibox.workers.main", "build",
            "-c", str(concurrency), "-n", name]
    if platform:
        argv += ["--platform", platform]
    log = farm.root / f"test-worker-{name.replace('@', '-')}.log"   # gone with the farm
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=e, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return Worker(proc, name, root, log)


def live_ads(farm, broker_redis=None) -> dict:
    """The live build workers' advertisements, by name."""
    from minibox.builder.platforms import live_workers
    from minibox.config import Settings
    from minibox.redisconn import connect

    redis = broker_redis or connect(Settings.from_env(farm.env))
    return {ad.name: ad for ad in live_workers(redis)}


def wait_advertised(farm, *workers: Worker, redis=None, timeout: float = 90) -> dict:
    """Wait until every worker is ready and advertised (its pool is up)."""
    def ready():
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker {w.name} exited:\n{w.tail()}")
        return {w.name for w in workers} <= set(live_ads(farm, redis))
    wait_until(ready, "the workers' advertisements", timeout)
    return live_ads(farm, redis)


def block_pids(events: list[dict]) -> dict[str, int]:
    """block name -> the pid that ran it (its last block_start)."""
    return {e["block"]: int(e["worker"].rsplit(":", 1)[1]) for e in events
            if e["type"] == "block_start"}


def wait_for(cond, what: str, timeout: float = 120, every: float = 0.2):
    """Poll ``cond`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)

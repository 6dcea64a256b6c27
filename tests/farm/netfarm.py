"""A farm across a real network boundary, on this one machine: simulated hosts.

The test makes a bridge of its own (unique name, a free 10.x.y.0/24) and gives it the
first address; Redis (with a password: the farm's token) and miniboxd (with its API token)
listen on that address only.  Each "host" is a network namespace (``ip netns add``) joined to
the bridge by a veth, where a build worker runs on a data root of its own: it reaches Redis
and the daemon over the bridge and nothing else (no route beyond the /24).  Cutting a host
off is ``ip link set <its veth> down``.  Every name is unique per run, and everything is
removed in ``close`` (workers by their process group, then the daemon, Redis, the
namespaces, the veths, the bridge), also when the test failed.

SAFETY: traffic only between the bridge's address and the namespaces on it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.farm.hosts import Worker, start_worker, wait_advertised
from tests.farmkit import Farm, free_port
from tests.netkit import free_subnets, wait_until


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Host:
    """A simulated machine: a network namespace on the test bridge, a data root, a worker."""

    def __init__(self, netfarm: "NetFarm", index: int):
        self.nf, self.index = netfarm, index
        self.netns = f"{netfarm.tag}h{index}"
        self.veth = f"{netfarm.tag}v{index}"            # the host side, on the bridge
        self.address = str(netfarm.net.network_address + 10 + index)
        self.root = Path(tempfile.mkdtemp(prefix=f"minibox-test-{self.netns}-",
                                          dir="/var/tmp"))
        self.worker: Worker | None = None

    def create(self) -> "Host":
        peer = f"{self.nf.tag}p{self.index}"
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", self.veth, "master", self.nf.bridge, "up")
        _ip("link", "set", peer, "netns", self.netns)
        inside = ("netns", "exec", self.netns, "ip")
        _ip(*inside, "link", "set", peer, "name", "eth0")
        _ip(*inside, "addr", "add", f"{self.address}/{self.nf.net.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        return self

    def start_worker(self, concurrency: int = 1, platform: str | None = None) -> Worker:
        self.worker = start_worker(self.nf.farm, f"{self.netns}@test", root=self.root,
                                   concurrency=concurrency, platform=platform,
                                   broker=self.nf.broker_url,
                                   prefix=("ip", "netns", "exec", self.netns))
        return self.worker

    def cut(self) -> None:
        """Pull this host's cable: nothing crosses its link any more."""
        _ip("link", "set", self.veth, "down")

    def close(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        _ip("netns", "del", self.netns, check=False)
        _ip("link", "del", self.veth, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class NetFarm:
    def __init__(self, hosts: int = 2):
        seed = tempfile.mktemp(prefix="nf", dir="")
        self.tag = "mbn" + hashlib.sha256(f"{seed}:{os.getpid()}".encode()).hexdigest()[:5]
        self.bridge = f"{self.tag}br"
        self.net = ipaddress.IPv4Network(free_subnets(1, seed)[0])
        self.gateway = str(self.net.network_address + 1)
        self.token = hashlib.sha256(os.urandom(16)).hexdigest()
        self.redis_port = free_port()
        self.broker_url = f"redis://:{self.token}@{self.gateway}:{self.redis_port}/0"
        self.redis: subprocess.Popen | None = None
        self.redis_dir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-redis-", dir="/var/tmp"))
        self.farm: Farm | None = None
        self.hosts: list[Host] = []
        self._want_hosts = hosts

    # --- bringing it up -----------------------------------------------------------
    def start(self) -> "NetFarm":
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.net.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            self.start_redis()
            port = free_port()
            api = f"http://{self.gateway}:{port}"
            self.farm = Farm({"MINIBOX_BROKER_URL": self.broker_url,
                              "MINIBOX_HTTP_ADDR": f"{self.gateway}:{port}",
                              "MINIBOX_API": api, "MINIBOX_API_TOKEN": self.token})
            self.farm.start(timeout=60, args=("--no-workers",))
            for i in range(self._want_hosts):
                self.add_host()
        except BaseException:
            self.close()
            raise
        return self

    def add_host(self) -> Host:
        host = Host(self, len(self.hosts))
        self.hosts.append(host)
        return host.create()

    def start_redis(self) -> None:
        """redis-server on the bridge's address only, with the token as its password."""
        log = open(self.redis_dir / "redis.log", "ab")
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", self.gateway, "--port", str(self.redis_port),
             "--requirepass", self.token, "--save", "", "--appendonly", "no",
             "--dir", str(self.redis_dir), "--protected-mode", "yes"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        wait_until(self._redis_up, "redis on the test bridge", 30)

    def _redis_up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.broker_url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop_redis(self) -> None:
        if self.redis and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait()

    def restart_redis(self) -> None:
        """Redis dies (SIGKILL: no goodbye to anyone) and comes back, empty."""
        self.stop_redis()
        time.sleep(0.5)
        self.start_redis()

    def redis_client(self):
        import redis

        return redis.Redis.from_url(self.broker_url, socket_timeout=10)

    def start_workers(self, concurrency: int = 1) -> list[Worker]:
        workers = [h.start_worker(concurrency) for h in self.hosts if h.worker is None]
        wait_advertised(self.farm, *workers, redis=self.redis_client())
        return workers

    def host_of(self, pid: int) -> Host | None:
        """The host whose worker ran ``pid`` (a block_start event's pid)."""
        for h in self.hosts:
            if h.worker is not None and h.worker.runs(pid):
                return h
        return None

    # --- tearing it down ------------------------------------------------------------
    def close(self) -> None:
        for h in self.hosts:
            h.close()
        if self.farm is not None:
            self.farm.destroy()
        self.stop_redis()
        _ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.redis_dir, ignore_errors=True)

"""A real farm for the runtime tests: redis-server, the runtime worker, and the real
``miniboxd`` on that broker (``--no-workers``: the farm runs the runtime worker itself, so a
test can kill and restart it).

Everything lives under one short data root; ``Farm.cleanup()`` kills every container
process of that root (by the pids recorded in its state files, checked against /proc),
removes their cgroups and the processes it started, also after a failed test.

The API needs its token: ``farm.cli`` finds it in the data root as a user's CLI does, and
``farm.http()`` sends it.  Tests reach the API only through those two.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.farmkit import CLIENT_VARS
from tests import netkit

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Farm:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="mbt-", dir="/var/tmp"))
        self.run_dir = self.root / "run"
        self.run_dir.mkdir()
        self.sock = self.run_dir / "redis.sock"
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, MINIBOX_DATA_ROOT=str(self.root),
                        MINIBOX_BROKER_URL=f"redis+socket://{self.sock}",
                        MINIBOX_API=self.api, MINIBOX_HTTP_ADDR=f"127.0.0.1:{self.port}",
                        PYTHONPATH=str(REPO), NO_COLOR="1",
                        MINIBOX_CGROUP_PARENT=f"minibox-test-{self.root.name}")
        for var in CLIENT_VARS:
            self.env.pop(var, None)
        self.net_env = netkit.net_env(self.root.name)      # own bridges, subnets, chains
        self.env.update(self.net_env)

    # --- processes ---------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.run_dir / f"{name}.log", "ab")
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             cwd=str(REPO), start_new_session=True)
        self.procs[name] = p
        return p

    def start(self) -> "Farm":
        self._spawn("redis", ["redis-server", "--port", "0", "--unixsocket", str(self.sock),
                              "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                              "--dir", str(self.run_dir)])
        _wait(lambda: self.sock.exists(), 10, "redis")
        self.start_worker()
        self.start_api()
        return self

    def start_api(self) -> None:
        """The real daemon, on this farm's Redis (so it starts no redis of its own)."""
        self._spawn("api", [PY, "-m", "minibox.daemon.main", "--no-workers"])
        _wait(self._api_up, 30, "miniboxd")

    def start_worker(self) -> None:
        log = self.run_dir / "worker.log"
        seen = log.stat().st_size if log.exists() else 0   # a restart appends to the log:
        self._spawn("worker", [PY, "-m", "minibox.workers.main", "runtime"])   # a new "ready"
        _wait(lambda: b"ready" in log.read_bytes()[seen:], 30, "the runtime worker")

    def kill_worker(self) -> None:
        p = self.procs.pop("worker")
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def _api_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def http(self, timeout: float = 60):
        """An httpx client of the API with the daemon's token."""
        import httpx
        token = (self.run_dir / "api-token").read_text().strip()
        return httpx.Client(base_url=self.api, timeout=timeout,
                            headers={"Authorization": f"Bearer {token}"})

    def cli(self, *args, timeout: float = 60, input: bytes | None = None):
        return subprocess.run([PY, "-m", "minibox.cli.main", *args], env=self.env,
                              capture_output=True, timeout=timeout, input=input)

    # --- cleanup -----------------------------------------------------------------------
    def container_ids(self) -> list[str]:
        d = self.root / "containers"
        return [n for n in os.listdir(d) if len(n) == 64] if d.is_dir() else []

    def cleanup(self) -> None:
        kill_containers(self.root)
        for name, p in list(self.procs.items()):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        self.procs.clear()
        remove_cgroups(self.env["MINIBOX_CGROUP_PARENT"])
        netkit.cleanup(self.env, str(self.root))
        shutil.rmtree(self.root, ignore_errors=True)


def kill_containers(root: Path) -> None:
    """SIGKILL every container process (init and monitor) of a data root, by the pids its
    state files record, checked against /proc (never a reused pid)."""
    from minibox.runtime.state import StateStore, alive
    for rec in StateStore(root).all():
        st = rec.state
        for pid_key, start_key in (("pid", "pid_start"), ("monitor_pid", "monitor_start")):
            if alive(st.get(pid_key), st.get(start_key)):
                try:
                    os.kill(st[pid_key], signal.SIGKILL)
                except ProcessLookupError:
                    pass
    time.sleep(0.2)


def remove_cgroups(parent: str) -> None:
    """Remove this farm's cgroup parent (and any container cgroup left below it)."""
    for top in Path("/sys/fs/cgroup").glob(f"*/{parent}"):
        for cg in sorted(top.iterdir(), reverse=True):
            if cg.is_dir():
                _rmdir_retry(cg)
        _rmdir_retry(top)


def _rmdir_retry(path: Path) -> None:
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout}s")

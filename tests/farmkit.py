"""A real MiniBox farm for tests: miniboxd on its embedded default (a private redis-server,
real Celery build workers and the runtime worker) over a temporary data root, driven
through the real CLI.  Nothing here is mocked.

The API needs its token: ``farm.cli`` finds it as a user's CLI does (as root, in the data
root's ``run/api-token``: MINIBOX_DATA_ROOT is in ``farm.env``), and ``farm.http()`` sends
it.  Tests reach the API only through those two, never with a bare httpx call."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests import netkit

REPO = Path(__file__).resolve().parent.parent
DEV_CACHE = Path(os.environ.get("MINIBOX_DEV_CACHE", "/var/cache/minibox-dev"))


def busybox_tarball() -> Path:
    path = DEV_CACHE / "busybox.tar.gz"
    if not path.exists():
        subprocess.run([str(REPO / "docker-free-dev/make-base-images.sh"), "busybox"],
                       check=True, stdout=subprocess.DEVNULL)
    return path


# what would make the CLI or the daemon use another credential than the farm's own
CLIENT_VARS = ("MINIBOX_API_TOKEN", "MINIBOX_API_AUTH", "MINIBOX_TLS_CA", "MINIBOX_TLS_CERT",
               "MINIBOX_TLS_KEY", "MINIBOX_TLS_CLIENT_CA", "MINIBOX_TLS_CLIENT_CERT",
               "MINIBOX_TLS_CLIENT_KEY")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Farm:
    def __init__(self, extra_env: dict | None = None, concurrency: int = 4):
        self.root = Path(tempfile.mkdtemp(prefix="minibox-test-", dir="/var/tmp"))
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update({"MINIBOX_DATA_ROOT": str(self.root),
                         "MINIBOX_HTTP_ADDR": f"127.0.0.1:{self.port}",
                         "MINIBOX_API": self.api,
                         "MINIBOX_BUILD_CONCURRENCY": str(concurrency),
                         "MINIBOX_CGROUP_PARENT": f"minibox-test-{self.root.name}",
                         "NO_COLOR": "1",
                         # no test may reach a registry beyond loopback (Docker Hub ...)
                         "MINIBOX_REGISTRY_ALLOW": "loopback"})
        for var in ("MINIBOX_BROKER_URL", *CLIENT_VARS):
            self.env.pop(var, None)
        self.net_env = netkit.net_env(self.root.name)      # own bridges, subnets, chains
        self.env.update(self.net_env)
        self.env.update(extra_env or {})
        self.api = self.env["MINIBOX_API"]
        self.proc: subprocess.Popen | None = None
        self.log = self.root.parent / (self.root.name + ".daemon.log")

    # --- lifecycle --------------------------------------------------------------
    def start(self, timeout: float = 30.0, args: tuple = ()) -> "Farm":
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "minibox.daemon.main", *args],
                                     env=self.env, stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("miniboxd exited at start:\n" + self.log.read_text())
            try:
                with self.http(timeout=1) as c:    # /ping is open; the token file is made
                    if c.get("/ping").status_code == 200:    # before the daemon listens
                        return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("miniboxd did not come up:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def destroy(self) -> None:
        self.stop()
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4]
            if mnt.startswith(str(self.root)):
                subprocess.run(["umount", "-l", mnt], check=False)
        netkit.cleanup(self.env, str(self.root))
        shutil.rmtree(self.root, ignore_errors=True)
        for top in Path("/sys/fs/cgroup").glob(f"*/{self.env['MINIBOX_CGROUP_PARENT']}"):
            for d in [*top.iterdir(), top]:
                if d.is_dir():
                    try:
                        d.rmdir()
                    except OSError:
                        pass
        self.log.unlink(missing_ok=True)

    def worker_pids(self, kind: str) -> list[int]:
        """PIDs of this farm's worker processes of a kind (parent first)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                env = (d / "environ").read_bytes()
            except OSError:
                continue
            if b"minibox.workers.main" in b" ".join(cmd) and kind.encode() in cmd \
                    and f"MINIBOX_DATA_ROOT={self.root}".encode() in env:
                out.append(int(d.name))
        return sorted(out)

    # --- driving it -------------------------------------------------------------
    def cli(self, *args, check: bool = False, timeout: float = 300, input=None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([sys.executable, "-m", "minibox.cli.main", *map(str, args)],
                              env=e, capture_output=True, text=True, timeout=timeout,
                              check=check, input=input)

    def build(self, ctx, tag: str, *extra, check: bool = True) -> subprocess.CompletedProcess:
        r = self.cli("build", "--progress", "plain", "-t", tag, *extra, ctx)
        if check and r.returncode != 0:
            raise AssertionError(f"build of {tag} failed ({r.returncode}):\n{r.stdout}\n"
                                 f"{r.stderr}")
        return r

    @property
    def token_file(self) -> Path:
        return self.root / "run" / "api-token"

    def token(self) -> str:
        """The daemon's API token, read from its file as root would."""
        return self.token_file.read_text().strip()

    def http(self, timeout: float = 60, token: str | None = None) -> httpx.Client:
        """An API client with the daemon's token (``token=""``: none), on TCP, https (with the
        farm's MINIBOX_TLS_CA and client certificate) or the unix socket MINIBOX_API names."""
        token = self.token() if token is None and self.token_file.exists() else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.api.startswith("unix://"):
            return httpx.Client(base_url="http://miniboxd", headers=headers, timeout=timeout,
                                transport=httpx.HTTPTransport(uds=self.api[len("unix://"):]))
        verify = True
        if self.api.startswith("https://"):
            import ssl
            verify = ssl.create_default_context(cafile=self.env.get("MINIBOX_TLS_CA"))
            if self.env.get("MINIBOX_TLS_CLIENT_CERT"):
                verify.load_cert_chain(self.env["MINIBOX_TLS_CLIENT_CERT"],
                                       self.env.get("MINIBOX_TLS_CLIENT_KEY"))
        return httpx.Client(base_url=self.api, headers=headers, timeout=timeout, verify=verify)

    def events(self, job_id: str) -> list[dict]:
        with self.http(30) as c:
            r = c.get(f"/builds/{job_id}/events", params={"follow": "false"})
        return [json.loads(x) for x in r.text.splitlines() if x.strip()]

    def last_job(self) -> dict:
        with self.http(10) as c:
            return c.get("/builds").json()[0]

    def image(self, name: str) -> dict:
        with self.http(10) as c:
            r = c.get(f"/images/{name}/json")
        r.raise_for_status()
        return r.json()


def daemon_procs(root) -> tuple[list[int], list[int]]:
    """PIDs of the redis-server and of the worker processes a daemon on data root ``root``
    runs (found by their socket and environment: only that farm's processes)."""
    redis, workers = [], []
    sock, mark = f"{root}/run/redis.sock".encode(), f"MINIBOX_DATA_ROOT={root}\0".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = open(f"/proc/{d}/cmdline", "rb").read()
            env = open(f"/proc/{d}/environ", "rb").read() if b"minibox.workers" in cmd else b""
        except OSError:
            continue
        if b"redis-server" in cmd and sock in cmd:
            redis.append(int(d))
        elif mark in env:
            workers.append(int(d))
    return sorted(redis), sorted(workers)


def build_busybox(farm: Farm, ctx: Path, tag: str = "busybox") -> None:
    """Build the offline busybox base as the image ``tag`` (``ctx``: an empty directory)."""
    shutil.copy(busybox_tarball(), ctx / "busybox.tar.gz")
    write_ctx(ctx, {"MiniBox": "BASE busybox.tar.gz\n"})
    farm.build(ctx, tag)


def busybox_farm(ctx: Path, extra_env: dict | None = None) -> Farm:
    """A started farm with the offline busybox base built as ``busybox`` (from ``ctx``)."""
    f = Farm(extra_env).start()
    try:
        ctx.mkdir(parents=True, exist_ok=True)
        build_busybox(f, ctx)
    except BaseException:
        f.destroy()
        raise
    return f


def write_ctx(base: Path, files: dict[str, str | bytes], mode: dict | None = None) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        if mode and rel in mode:
            p.chmod(mode[rel])
    return base


class RedisMonitor:
    """Every command a Redis runs while this is open (MONITOR on a connection of its own
    from ``client``), as text: ``self.commands``."""

    def __init__(self, client):
        self._client = client           # a client dropped closes its connections
        self._mon = client.monitor()
        self._mon.__enter__()
        self.commands: list[str] = []
        self._stop = False
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        try:
            while not self._stop:
                self.commands.append(self._mon.next_command()["command"])
        except Exception:  # noqa: BLE001 - the connection is closed under it at the end
            pass

    def wait_for(self, pred, timeout=10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(pred(c) for c in list(self.commands)):
                return
            time.sleep(0.02)
        raise AssertionError("command not seen: " + repr(self.commands[-20:]))

    def close(self):
        self._stop = True
        self._mon.connection.disconnect()
        self._t.join(5)

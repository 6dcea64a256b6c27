"""Real registries for tests: Debian's ``docker-registry`` (distribution 2.8) on a free
loopback port with its own config and storage dir, plain, with htpasswd basic auth, or with
bearer tokens from a small token server run here (JWTs signed by ``openssl``).  Every
process is started here and stopped by PID; every dir is removed."""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx

from tests.farmkit import free_port

USER, PASSWORD = "tester", "s3cret-pw"


class Registry:
    def __init__(self, auth: str = "none"):
        self.dir = Path(tempfile.mkdtemp(prefix="mb-registry-", dir="/var/tmp"))
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        self.token_server: TokenServer | None = None

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
                 f"    rootdirectory: {self.dir / 'data'}", "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}", "  secret: minibox-test-secret"]
        if self.auth == "basic":
            pw = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                capture_output=True, text=True).stdout
            (self.dir / "htpasswd").write_text(pw)
            lines += ["auth:", "  htpasswd:", "    realm: minibox-test",
                      f"    path: {self.dir / 'htpasswd'}"]
        elif self.auth == "token":
            self.token_server = TokenServer(self.dir)
            lines += ["auth:", "  token:", f"    realm: {self.token_server.url}/token",
                      "    service: minibox-test-registry", "    issuer: minibox-test-issuer",
                      f"    rootcertbundle: {self.token_server.cert}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "Registry":
        (self.dir / "config.yml").write_text(self._config())
        log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited:\n" + self.log())
            try:
                httpx.get(f"http://{self.host}/v2/", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not come up:\n" + self.log())

    def log(self) -> str:
        try:
            return (self.dir / "registry.log").read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.token_server:
            self.token_server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- looking inside, as a client would -----------------------------------------------
    def client(self) -> httpx.Client:
        headers = {}
        if self.auth == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{USER}:{PASSWORD}".encode()).decode()
        return httpx.Client(base_url=f"http://{self.host}", headers=headers, timeout=30)

    def tags(self, repo: str) -> list[str]:
        with self.client() as c:
            r = c.get(f"/v2/{repo}/tags/list")
            return (r.json().get("tags") or []) if r.status_code == 200 else []


class TokenServer:
    """Issues registry JWTs (RS256, the cert in ``x5c``) to anyone, or only to USER with
    PASSWORD when ``require_login`` is set; records the scopes asked for."""

    def __init__(self, workdir: Path):
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=minibox-test-token", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.require_login = False
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query)
        auth = h.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if (u, p) != (USER, PASSWORD):
                return self._send(h, 401, {"details": "bad credentials"})
            user = u
        self.requests.append({"user": user, "scope": query.get("scope", [])})
        if self.require_login and user is None:
            return self._send(h, 401, {"details": "login required"})
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self._send(h, 200, {"token": self._jwt(query.get("service", [""])[0], user, access)})

    @staticmethod
    def _send(h, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _jwt(self, service: str, user: str | None, access: list) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {"iss": "minibox-test-issuer", "sub": user or "", "aud": service,
                  "exp": now + 600, "nbf": now - 60, "iat": now, "jti": str(time.time_ns()),
                  "access": access}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing.encode(), check=True, capture_output=True).stdout
        return f"{signing}.{_b64(sig)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Podman:
    """podman with a private storage root under a temp dir (removed by ``cleanup``)."""

    ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")

    def __init__(self, driver: str = "vfs"):
        self.dir = Path(tempfile.mkdtemp(prefix="mb-podman-", dir="/var/tmp"))
        self.base = ["podman", "--root", str(self.dir / "root"), "--runroot",
                     str(self.dir / "run"), "--tmpdir", str(self.dir / "tmp"),
                     "--storage-driver", driver, "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file", "--runtime", "runc"]

    def __call__(self, *args: str, check: bool = True, timeout: float = 300
                 ) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.base, *args], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def cleanup(self) -> None:
        subprocess.run([*self.base, "system", "reset", "--force"], capture_output=True,
                       timeout=300)
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith(str(self.dir)):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeRegistry:
    """A distribution API that answers what a test tells it to, for the failures a real
    registry will not produce: garbage, wrong digests, cut-off downloads.  ``blobs`` maps a
    digest to (bytes, mode): ``ok``, ``truncate`` (always cut off halfway), ``flaky`` (cut
    off the first time, then served with Range support) or ``wrong`` (other bytes)."""

    def __init__(self):
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.blobs: dict[str, tuple[bytes, str]] = {}
        self.requests: list[tuple[str, dict]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                fake.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h) -> None:
        self.requests.append((h.path, dict(h.headers)))
        parts = h.path.split("/")
        if h.path == "/v2/":
            return self._send(h, 200, "application/json", b"{}")
        if "manifests" in parts:
            media, body = self.manifests.get(parts[-1], ("", b""))
            if not body:
                return self._send(h, 404, "application/json",
                                  b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            return self._send(h, 200, media, body)
        if "blobs" in parts and parts[-1] in self.blobs:
            data, mode = self.blobs[parts[-1]]
            if mode == "wrong":
                data = bytes(len(data))
            start = 0
            rng = h.headers.get("Range", "")
            if rng.startswith("bytes=") and mode == "flaky":
                start = int(rng[6:].split("-")[0])
            cut = mode == "truncate" or (mode == "flaky" and start == 0)
            h.send_response(206 if start else 200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(data) - start))
            h.end_headers()
            h.wfile.write(data[start:start + (len(data) - start) // 2] if cut else data[start:])
            h.wfile.flush()
            if cut:
                h.close_connection = True
            return
        self._send(h, 404, "application/json", b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')

    @staticmethod
    def _send(h, code: int, media: str, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", media)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

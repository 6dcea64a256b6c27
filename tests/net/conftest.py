"""Fixtures for the network tests: the build farm (tests/farm's), the network probe binary,
and servers on the host that a build step or a container must (or must not) reach."""

from __future__ import annotations

import contextlib
import http.server
import secrets
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.farm.conftest import ctx, farm  # noqa: F401  (the session's farm)

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def netprobe(tmp_path_factory) -> Path:
    """tests/net/netprobe.c, static (it runs in busybox images)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the network probe")
    out = tmp_path_factory.mktemp("netprobe") / "netprobe"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(HERE / "netprobe.c")],
                   check=True)
    return out


class Listener:
    """A TCP listener (or an abstract unix socket) the test holds; counts connections."""

    def __init__(self, sock: socket.socket, name):
        self.sock, self.name = sock, name
        sock.setblocking(False)

    def accepted(self) -> int:
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return n
            c.close()
            n += 1


@pytest.fixture
def loopback_tcp():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield Listener(s, s.getsockname()[1])
    finally:
        s.close()


@pytest.fixture
def abstract_unix():
    name = f"minibox-test-{secrets.token_hex(6)}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(8)
    try:
        yield Listener(s, name)
    finally:
        s.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@contextlib.contextmanager
def http_server(address: str, directory: Path):
    """A plain HTTP server on ``address`` (never http.server's, which does reverse DNS)."""
    handler = lambda *a, **kw: _Quiet(*a, directory=str(directory), **kw)  # noqa: E731
    srv = socketserver.ThreadingTCPServer((address, 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def wait_for_address(address: str, timeout: float = 60) -> None:
    """Until ``address`` is assigned on this host (a bridge's gateway, set up by a worker)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            try:
                s.bind((address, 0))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no interface has {address}") from None
        time.sleep(0.1)

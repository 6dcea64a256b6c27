"""The CLI's one HTTP client (cli/client.py) against a real loopback server that echoes
what it received: each kind of body arrives as the daemon's framework reads it, the query
is encoded as httpx encoded it, an answer without a body does not hang, and each failure is
the one MiniBoxError the CLI prints.  Whole commands against a real daemon:
tests/auth/ (token, TLS, unix socket), tests/test_cli_errors.py (errors of every shape)."""

from __future__ import annotations

import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minibox.cli import endpoint
from minibox.cli.client import Client
from minibox.errors import DaemonUnavailable, NotFound


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or ""):
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                out += self.rfile.read(size)
                self.rfile.readline()
                if not size:
                    return out
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _answer(self):
        body = self._body()
        if self.path.startswith("/empty"):
            self.send_response(204)
            self.end_headers()
            return
        if self.path.startswith("/missing"):
            data = json.dumps({"error": {"kind": "not_found", "message": "no such thing",
                                         "hint": "look elsewhere"}}).encode()
            status = 404
        else:
            data = json.dumps({"method": self.command, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "body": body.decode("latin-1")}).encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def echo(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    monkeypatch.setenv("MINIBOX_API", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("MINIBOX_API_TOKEN", "t0k")
    endpoint.use_host(None)          # read the environment again
    try:
        yield Client(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        endpoint.use_host(None)


def test_query_json_and_token(echo):
    got = echo.get("/x", params=[("filter", "a=b c"), ("filter", "d"), ("all", True),
                                 ("none", None)]).json()
    assert got["path"] == "/x?filter=a%3Db%20c&filter=d&all=true"
    assert got["headers"]["authorization"] == "Bearer t0k"
    assert got["headers"]["connection"] == "close"
    got = echo.post("/y", json={"n": [1, "ü"]}).json()
    assert json.loads(got["body"]) == {"n": [1, "ü"]}
    assert got["headers"]["content-type"] == "application/json"


def test_bytes_file_and_chunked_bodies(echo, tmp_path):
    assert echo.post("/b", content=b"\0raw").json()["body"] == "\0raw"
    f = tmp_path / "f"
    f.write_bytes(b"0123456789")
    with open(f, "rb") as fh:
        fh.seek(3)                            # sent from where it stands
        got = echo.post("/f", content=fh, headers={"Content-Type": "application/x-tar"}).json()
    assert got["body"] == "3456789" and got["headers"]["content-length"] == "7"
    assert got["headers"]["content-type"] == "application/x-tar"
    got = echo.post("/c", content=iter([b"ab", b"", b"cd"])).json()
    assert got["body"] == "abcd" and got["headers"]["transfer-encoding"] == "chunked"


def test_multipart_body(echo):
    tar = io.BytesIO(b"TARDATA")
    got = echo.post("/builds", data={"tag": "t:1", "file": "MiniBox"},
                    files={"context": ("context.tar", tar, "application/x-tar")}).json()
    ctype = got["headers"]["content-type"]
    boundary = ctype.split("boundary=")[1]
    body = got["body"]
    assert int(got["headers"]["content-length"]) == len(body.encode("latin-1"))
    assert body.endswith(f"--{boundary}--\r\n")
    assert 'name="tag"\r\n\r\nt:1\r\n' in body and 'name="file"\r\n\r\nMiniBox\r\n' in body
    assert 'filename="context.tar"\r\nContent-Type: application/x-tar\r\n\r\nTARDATA\r\n' in body


def test_streamed_answer_and_one_without_a_body(echo):
    with echo.stream("GET", "/s") as r:
        assert r.status_code == 200
        assert json.loads(b"".join(r.iter_bytes()))["path"] == "/s"
        assert r.complete
    r = echo.delete("/empty")                 # 204: no body to wait for
    assert r.status_code == 204 and r.content == b""


def test_the_daemons_error_is_its_minibox_error(echo):
    with pytest.raises(NotFound, match="no such thing") as e:
        echo.get("/missing")
    assert e.value.hint == "look elsewhere"


def test_nobody_listening_is_one_clear_error(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]            # closed again: nothing listens there
    monkeypatch.setenv("MINIBOX_API", f"http://127.0.0.1:{port}")
    endpoint.use_host(None)
    try:
        with pytest.raises(DaemonUnavailable, match=f"cannot reach miniboxd at "
                           f"http://127.0.0.1:{port}: ") as e:
            Client().get("/ping")
        assert "is it running?" in e.value.hint and "MINIBOX_API" in e.value.hint
    finally:
        endpoint.use_host(None)

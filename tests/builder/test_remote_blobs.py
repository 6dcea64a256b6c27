"""A remote build worker's blob transfers (builder/remote.py) against a real HTTP peer on
loopback: a body cut short by a lost connection is an error naming the daemon, and nothing
half is committed to the worker's store."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest

from minibox.builder.remote import Daemon
from minibox.config import Settings
from minibox.errors import DaemonUnavailable, StoreError
from minibox.store import Store


def _serve_once(reply: bytes) -> tuple[str, threading.Thread]:
    """A one-request HTTP peer on loopback that sends ``reply`` and hangs up."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(reply)
        srv.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}", t


def _daemon(url: str) -> Daemon:
    return Daemon(url, Settings.from_env({"MINIBOX_API_TOKEN": "t0ken"}))


def test_a_blob_cut_short_is_an_error_and_nothing_is_committed(tmp_path):
    body = b"x" * 10
    digest = "sha256:" + hashlib.sha256(b"x" * 1000).hexdigest()
    url, t = _serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + body)
    store = Store(tmp_path / "root")
    with pytest.raises(DaemonUnavailable, match=f"cannot fetch {digest} from miniboxd at {url}"):
        _daemon(url).fetch_blob(store, digest, "application/octet-stream")
    t.join(10)
    assert not store.has_blob(digest)
    assert list((tmp_path / "root" / "tmp").iterdir()) == []


def test_a_blob_whose_bytes_do_not_match_its_digest_is_refused(tmp_path):
    digest = "sha256:" + hashlib.sha256(b"the real layer").hexdigest()
    url, t = _serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforge")
    store = Store(tmp_path / "root")
    with pytest.raises(StoreError):
        _daemon(url).fetch_blob(store, digest, "application/octet-stream")
    t.join(10)
    assert not store.has_blob(digest)
    assert list((tmp_path / "root" / "tmp").iterdir()) == []

"""Blobs between a build worker on another host and the daemon (builder/remote.py against a
real miniboxd): what arrives is what was sent, byte for byte, a body that does not hash to
its digest is refused and never stored, and an upload cut off midway leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import types
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from minibox.builder.remote import Daemon
from minibox.errors import StoreError
from minibox.rmtree import remove_tree
from minibox.store import Store
from minibox.store.oci import LAYER_MEDIA_TYPES
from tests.netkit import wait_until

MB = 1 << 20


@pytest.fixture
def elsewhere():
    """The data root of a worker on another host (not the daemon's)."""
    root = Path(tempfile.mkdtemp(prefix="minibox-test-xfer-", dir="/var/tmp"))
    try:
        yield Store(root)
    finally:
        remove_tree(root, ignore_errors=True)


def _daemon(farm) -> Daemon:
    settings = types.SimpleNamespace(api_token=farm.token(), tls_ca=None,
                                     tls_client_cert=None, tls_client_key=None)
    return Daemon(farm.api, settings)


def _blob(store: Store, size: int) -> str:
    with store.open_blob_writer(LAYER_MEDIA_TYPES["none"]) as w:
        for i in range(0, size, MB):
            w.write(os.urandom(min(MB, size - i)))
    return w.descriptor.digest


def _leftovers(farm) -> list[str]:
    return [p.name for p in (farm.root / "tmp").iterdir() if p.name.startswith("blob-")]


def test_a_layer_goes_to_the_daemon_and_to_another_host_intact(farm, elsewhere, tmp_path):
    daemon = _daemon(farm)
    digest = _blob(elsewhere, 21 * MB + 12345)     # several batches and a ragged tail
    assert not daemon.has_blob(digest)
    daemon.push_blob(elsewhere, digest)
    assert daemon.has_blob(digest)
    sent = elsewhere.blob_path(digest).read_bytes()
    assert (farm.root / "blobs" / "sha256" / digest[7:]).read_bytes() == sent
    daemon.push_blob(elsewhere, digest)             # again: already there, nothing changes
    other = Store(tmp_path / "third-host")
    daemon.fetch_blob(other, digest, LAYER_MEDIA_TYPES["none"])
    assert other.blob_path(digest).read_bytes() == sent
    assert not _leftovers(farm) and not list(other.layout.tmp.iterdir())


def test_a_body_that_does_not_hash_to_its_digest_is_never_stored(farm, elsewhere):
    daemon = _daemon(farm)
    digest = _blob(elsewhere, 9 * MB)
    path = elsewhere.blob_path(digest)
    data = bytearray(path.read_bytes())
    data[5 * MB] ^= 1                               # one bit, in the middle of a batch
    path.chmod(0o644)
    path.write_bytes(data)
    with pytest.raises(StoreError, match="does not hash to"):
        daemon.push_blob(elsewhere, digest)
    assert not daemon.has_blob(digest)
    assert not (farm.root / "blobs" / "sha256" / digest[7:]).exists()
    wait_until(lambda: not _leftovers(farm), "the refused upload's temp file to go")


def test_an_upload_cut_off_midway_leaves_nothing(farm, elsewhere):
    digest = _blob(elsewhere, 12 * MB)
    u = urlsplit(farm.api)
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        s.sendall(f"PUT /blobs/{digest} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {farm.token()}\r\n"
                  f"Content-Length: {12 * MB}\r\n\r\n".encode())
        with open(elsewhere.blob_path(digest), "rb") as f:
            s.sendall(f.read(7 * MB))               # more than one batch, then gone
        wait_until(lambda: _leftovers(farm), "the upload to start")
    wait_until(lambda: not _leftovers(farm), "the cut-off upload's temp file to go", 60)
    assert not _daemon(farm).has_blob(digest)


def test_fetching_a_blob_the_daemon_lacks_is_a_clear_error(farm, elsewhere):
    missing = "sha256:" + hashlib.sha256(b"nobody made this").hexdigest()
    with pytest.raises(StoreError, match="has no blob"):
        _daemon(farm).fetch_blob(elsewhere, missing, LAYER_MEDIA_TYPES["none"])
    assert not list(elsewhere.layout.tmp.iterdir()) and not elsewhere.has_blob(missing)

"""The blob store: content addressing, verification, and crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from minibox.errors import StoreError, UserError
from minibox.store import Store


def test_data_root_is_an_oci_layout(store):
    root = store.root
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert (root / "blobs" / "sha256").is_dir()
    assert not (root / "cache").exists(), "cache/ belongs to the build cache"
    # reopening is harmless
    Store(root)
    assert json.loads((root / "index.json").read_text())["manifests"] == []


def test_put_read_has(store):
    desc = store.put_blob_bytes(b"hello", "text/plain")
    assert desc.digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert desc.size == 5 and desc.media_type == "text/plain"
    assert store.has_blob(desc.digest)
    assert store.read_blob(desc.digest) == b"hello"
    assert store.blob_path(desc.digest).stat().st_mode & 0o777 == 0o644
    # idempotent
    assert store.put_blob_bytes(b"hello", "text/plain") == desc
    assert list(store.layout.tmp.iterdir()) == []


def test_read_json_and_damage_detection(store):
    desc = store.put_json({"b": 1, "a": [1, 2]}, "application/json")
    assert store.read_blob(desc.digest) == b'{"a":[1,2],"b":1}'
    assert store.read_json(desc.digest) == {"a": [1, 2], "b": 1}
    store.blob_path(desc.digest).write_bytes(b'{"a":[1,2],"b":2}')
    with pytest.raises(StoreError, match="damaged"):
        store.read_json(desc.digest)


def test_missing_blob_and_bad_digest(store):
    missing = "sha256:" + "0" * 64
    assert not store.has_blob(missing)
    with pytest.raises(StoreError, match="missing"):
        store.read_blob(missing)
    for bad in ("sha256:../../etc/passwd", "md5:abc", "sha256:ABC" + "0" * 61, ""):
        with pytest.raises(UserError):
            store.blob_path(bad)


def test_streaming_writer_with_expected_digest(store):
    data = os.urandom(3 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with store.open_blob_writer("application/octet-stream", expected_digest=digest,
                                expected_size=len(data)) as w:
        for i in range(0, len(data), 100_000):
            w.write(data[i:i + 100_000])
    assert w.descriptor.digest == digest
    assert store.read_blob(digest) == data


def test_writer_mixes_buffered_writes_and_batches_in_order(store):
    """write() (buffered) and write_chunks() (a batch of a body's pieces, written as they
    are) interleave into one blob, in order, past the point where the disk is started
    (every 8 MiB); a restart throws both away."""
    pieces = [os.urandom(n) for n in (10, 5 << 20, 1, 256 << 10, 3 << 20, 7, 9 << 20)]
    with store.open_blob_writer("x") as w:
        w.write(b"thrown away")
        w.write_chunks([b"also", bytearray(b" thrown away")])
        w.restart()
        for i, piece in enumerate(pieces):
            if i % 2:
                w.write_chunks([piece[:len(piece) // 3], memoryview(piece)[len(piece) // 3:],
                                b""])
            else:
                w.write(piece)
        data = b"".join(pieces)
        assert w.size == len(data) and w.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.read_blob(w.descriptor.digest) == data
    assert list(store.layout.tmp.iterdir()) == []


def test_writer_digest_mismatch_commits_nothing(store):
    wrong = "sha256:" + "1" * 64
    with pytest.raises(StoreError, match="digest mismatch"):
        with store.open_blob_writer("x", expected_digest=wrong) as w:
            w.write(b"something else")
    assert not store.has_blob(wrong)
    assert not store.has_blob("sha256:" + hashlib.sha256(b"something else").hexdigest())
    assert list(store.layout.tmp.iterdir()) == []
    with pytest.raises(StoreError, match="size mismatch"):
        with store.open_blob_writer("x", expected_size=3) as w:
            w.write(b"four")
    assert list(store.layout.blobs.iterdir()) == []


def test_writer_abandoned_by_exception_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.open_blob_writer("x") as w:
            w.write(b"half a blob")
            raise RuntimeError("worker died")
    assert list(store.layout.blobs.iterdir()) == []
    assert list(store.layout.tmp.iterdir()) == []


def test_killed_writer_leaves_only_untrusted_tmp(store):
    """A process killed mid-write leaves a temp file nobody reads; clean_tmp removes it."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from minibox.store import Store
        s = Store(Path({str(store.root)!r}))
        w = s.open_blob_writer("application/octet-stream")
        w.write(b"x" * (4 << 20))
        w._file.flush()
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "written" in proc.stdout
    digest = "sha256:" + hashlib.sha256(b"x" * (4 << 20)).hexdigest()
    assert not store.has_blob(digest)
    assert list(store.layout.blobs.iterdir()) == []
    leftovers = list(store.layout.tmp.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith("blob-")
    assert store.clean_tmp(older_than=3600) == 0          # too young to remove
    assert store.clean_tmp(older_than=0) == 1
    assert list(store.layout.tmp.iterdir()) == []


def test_clean_tmp_skips_entries_with_mounts(store):
    busy = store.tmp_dir("busy-")
    (busy / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(busy / "mnt")], check=True)
    try:
        (busy / "mnt" / "precious").write_text("keep me")
        idle = store.tmp_dir("idle-")
        assert store.clean_tmp(older_than=0) == 1
        assert not idle.exists()
        assert (busy / "mnt" / "precious").read_text() == "keep me"
    finally:
        subprocess.run(["umount", str(busy / "mnt")], check=True)

"""Build contexts are data, through the real daemon: uploads (POST /builds, `minibox build`)
and daemon-side directories (POST /builds/path) are read only inside themselves, kept to
the limits, and a refusal leaves nothing in contexts/."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from minibox.rmtree import remove_tree
from tests.api.conftest import contexts_left
from tests.farmkit import write_ctx

SECRET = "host-secret-4a7e19"


def tar_bytes(members: list[tuple[str, bytes | str | None]]) -> bytes:
    """(name, content): bytes a file, a str starting with '->' a symlink, None a dir."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload(farm, data: bytes, **fields):
    with farm.http() as c:
        return c.post("/builds", files={"context": ("context.tar", data)},
                      data={"tag": "edge-test", **fields})


@pytest.fixture
def secret_file(tmp_path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text(f"{SECRET}\n")
    return p


def assert_refused(r, status: int, needle: str) -> str:
    assert r.status_code == status, r.text
    msg = r.json()["error"]["message"]
    assert needle in msg, msg
    assert SECRET not in r.text
    return msg


def test_uploaded_minibox_file_linking_out_is_refused_unread(farm, secret_file):
    r = upload(farm, tar_bytes([("MiniBox", "->" + str(secret_file))]))
    msg = assert_refused(r, 400, "outside the build context")
    assert str(secret_file) not in msg
    r = upload(farm, tar_bytes([("MiniBox", b"BASE scratch\n")]), file="../../etc/passwd")
    assert_refused(r, 400, "relative path inside the build context")
    assert contexts_left(farm) == []


def test_uploaded_minibox_file_linking_to_a_device_is_refused(farm):
    r = upload(farm, tar_bytes([("MiniBox", "->/dev/zero")]))
    assert_refused(r, 400, "outside the build context")
    assert contexts_left(farm) == []


def test_path_build_minibox_file_linking_out_is_refused_unread(farm, srcdir, secret_file):
    os.symlink(secret_file, srcdir / "MiniBox")
    with farm.http() as c:
        r = c.post("/builds/path", json={"tag": "edge-test", "context": str(srcdir)})
    msg = assert_refused(r, 400, "outside the build context")
    assert str(secret_file) not in msg
    assert contexts_left(farm) == []


def test_path_build_minibox_fifo_is_not_opened(farm, srcdir):
    os.mkfifo(srcdir / "MiniBox")
    t0 = time.monotonic()
    with farm.http() as c:
        r = c.post("/builds/path", json={"tag": "edge-test", "context": str(srcdir)})
    assert_refused(r, 400, "no MiniBox file")
    assert time.monotonic() - t0 < 50          # (a blocking open would hang until timeout)
    assert contexts_left(farm) == []


def test_copy_through_a_link_out_of_the_context_names_no_host_path(farm, ctx_dir):
    write_ctx(ctx_dir, {"MiniBox": "BASE scratch\nBLOCK a\n    COPY esc/passwd /x\n"})
    os.symlink("/etc", ctx_dir / "esc")
    r = farm.build(ctx_dir, "edge-copy", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "MiniBox:3" in r.stderr and "outside the build context" in r.stderr
    assert "/etc" not in r.stderr.replace("COPY esc/passwd", "")


@pytest.fixture
def ctx_dir(tmp_path) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    return d


def make_deep(top: Path, levels: int) -> None:
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_a_2000_level_context_is_refused_clearly_and_cleaned_up(farm, ctx_dir, srcdir):
    for d in (ctx_dir, srcdir):
        write_ctx(d, {"MiniBox": "BASE scratch\n"})
        make_deep(d, 2000)
    try:
        r = farm.build(ctx_dir, "edge-deep", check=False)
        assert r.returncode == 2, r.stderr
        assert "too deep" in r.stderr and "MINIBOX_CONTEXT_MAX_DEPTH" in r.stderr
        assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr
        assert contexts_left(farm) == []
        with farm.http() as c:
            r = c.post("/builds/path", json={"tag": "edge-deep", "context": str(srcdir)})
        assert_refused(r, 400, "too deep")
        assert contexts_left(farm) == []
    finally:
        remove_tree(ctx_dir)


def test_too_many_files_via_the_cli(farm, ctx_dir):
    write_ctx(ctx_dir, {"MiniBox": "BASE scratch\n",
                        **{f"many/f{i}": "x" for i in range(400)}})
    r = farm.build(ctx_dir, "edge-many", check=False)
    assert r.returncode == 2 and "more than 300 files" in r.stderr
    assert "MINIBOX_CONTEXT_MAX_FILES" in r.stderr and "Traceback" not in r.stderr
    assert contexts_left(farm) == []


def test_an_upload_over_the_size_limit_is_413_before_it_is_stored(farm):
    big = tar_bytes([("MiniBox", b"BASE scratch\n"), ("blob", os.urandom(48 << 20))])
    r = upload(farm, big)
    assert r.status_code == 413, r.text
    assert "MINIBOX_CONTEXT_MAX_SIZE" in r.json()["error"]["hint"]
    assert contexts_left(farm) == []


def test_a_client_still_sending_an_oversized_body_gets_the_413_not_a_reset(farm):
    """The daemon reads and drops the rest of a refused body before it answers and closes:
    a connection closed with unread data is reset, and the client would never see why."""
    import socket

    size = 48 << 20
    host, port = farm.api.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /builds HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
                     f"Content-Type: multipart/form-data; boundary=b\r\n"
                     f"Authorization: Bearer {farm.token()}\r\n\r\n".encode())
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):           # all of it, as a client that does not
            sock.sendall(chunk)               # read before it has sent does
            time.sleep(0.005)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_content_over_the_size_limit_is_refused_while_unpacking(farm):
    raw = tar_bytes([("MiniBox", b"BASE scratch\n"), ("blob", os.urandom(9 << 20))])
    r = upload(farm, gzip.compress(raw, 1))
    assert_refused(r, 400, "too large")
    assert contexts_left(farm) == []


def test_a_compression_bomb_is_refused(farm):
    bomb = gzip.compress(tar_bytes([("MiniBox", b"BASE scratch\n"),
                                    ("zeros", bytes(7 << 20))]), 9)
    r = upload(farm, bomb)
    assert_refused(r, 400, "expands more than 100 times")
    assert contexts_left(farm) == []


def test_a_good_upload_still_builds(farm):
    r = upload(farm, tar_bytes([("MiniBox", "->real"), ("real", b"BASE scratch\n")]))
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with farm.http() as c:
            status = c.get(f"/builds/{job}").json()["status"]
        if status in ("done", "failed", "cancelled"):
            break
        time.sleep(0.1)
    try:
        assert status == "done"
        assert contexts_left(farm) == []
    finally:    # the farm keeps no image (see conftest)
        with farm.http() as c:
            c.delete("/images/edge-test")

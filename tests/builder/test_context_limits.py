"""Contexts are data: limits on what an upload may hold, files read only inside the context,
and trees of any depth walked and removed without recursion."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.api.test_contexts import tar_bytes

from minibox.builder.context import ContextLimits, pack_context, unpack_context
from minibox.builder.contextfile import read_context_file
from minibox.builder.ignore import IgnoreMatcher
from minibox.config import Settings
from minibox.errors import UserError
from minibox.rmtree import remove_tree

SECRET = "top-secret-bytes-from-outside"


tar_of = tar_bytes      # one way to make a test tar (tests/api/test_contexts.py)


def refused(data: bytes, dest: Path, limits: ContextLimits) -> str:
    with pytest.raises(UserError) as info:
        unpack_context(io.BytesIO(data), str(dest), limits)
    return info.value.render()


def make_deep(top: Path, levels: int, name: str = "d") -> None:
    """``levels`` nested directories under ``top`` (by descriptor: the path is too long)."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


# ---- limits -------------------------------------------------------------------------------

def test_too_many_files_is_refused(tmp_path):
    data = tar_of([(f"f{i}", b"x") for i in range(11)])
    msg = refused(data, tmp_path / "out", ContextLimits(max_files=10))
    assert "more than 10 files" in msg and "MINIBOX_CONTEXT_MAX_FILES" in msg


def test_too_much_content_is_refused(tmp_path):
    data = tar_of([("big", b"y" * 5000)])
    msg = refused(data, tmp_path / "out", ContextLimits(max_bytes=4096))
    assert "too large" in msg and "4 KiB" in msg and "MINIBOX_CONTEXT_MAX_SIZE" in msg


def test_too_deep_is_refused_without_recursion(tmp_path):
    name = "/".join(["d"] * 2000) + "/leaf"
    data = tar_of([(name, b"x")])
    msg = refused(data, tmp_path / "out", ContextLimits())
    assert "too deep" in msg and "2001 levels" in msg and "MINIBOX_CONTEXT_MAX_DEPTH" in msg


def test_a_compression_bomb_is_refused_while_it_expands(tmp_path):
    raw = tar_of([("zeros", bytes(64 << 20))])
    bomb = gzip.compress(raw, 9)
    assert len(raw) / len(bomb) > 500
    msg = refused(bomb, tmp_path / "out", ContextLimits(max_ratio=100))
    assert "expands more than 100 times" in msg and "MINIBOX_CONTEXT_MAX_RATIO" in msg
    written = (tmp_path / "out" / "zeros").stat().st_size
    assert written < 8 << 20, "the bomb was expanded far past the ratio before the refusal"


def test_ordinary_compressed_and_plain_contexts_pass(tmp_path):
    text = "".join(f"line {i} of some source file\n" for i in range(20000)).encode()
    raw = tar_of([("src", None), ("src/a.py", text)])
    unpack_context(io.BytesIO(gzip.compress(raw)), str(tmp_path / "gz"), ContextLimits())
    unpack_context(io.BytesIO(raw), str(tmp_path / "plain"), ContextLimits(max_ratio=1))
    assert (tmp_path / "gz/src/a.py").read_bytes() == text
    assert (tmp_path / "plain/src/a.py").read_bytes() == text


def test_packing_a_daemon_side_directory_stops_at_the_limits(tmp_path):
    c = tmp_path / "c"
    for i in range(5):
        (c / f"d{i}").mkdir(parents=True)
        (c / f"d{i}" / "f").write_bytes(b"z" * 1000)
    with pytest.raises(UserError, match="more than 6 files"):
        pack_context(str(c), io.BytesIO(), ContextLimits(max_files=6))
    with pytest.raises(UserError, match="too large"):
        pack_context(str(c), io.BytesIO(), ContextLimits(max_bytes=2500))
    make_deep(c / "deep", 40)
    try:
        with pytest.raises(UserError, match="too deep"):
            pack_context(str(c), io.BytesIO(), ContextLimits(max_depth=30))
    finally:
        remove_tree(c)


def test_limits_come_from_the_environment():
    lim = Settings.from_env({"MINIBOX_CONTEXT_MAX_SIZE": "512m", "MINIBOX_CONTEXT_MAX_FILES": "7",
                             "MINIBOX_CONTEXT_MAX_DEPTH": "9",
                             "MINIBOX_CONTEXT_MAX_RATIO": "3"}).context_limits
    assert lim == ContextLimits(max_bytes=512 << 20, max_files=7, max_depth=9, max_ratio=3)
    assert Settings.from_env({}).context_limits == ContextLimits()
    assert Settings.from_env({"MINIBOX_CONTEXT_MAX_SIZE": "lots"}).context_limits == \
        ContextLimits()


# ---- files read inside the context --------------------------------------------------------

@pytest.fixture
def outside(tmp_path) -> Path:
    p = tmp_path / "outside.txt"
    p.write_text(f"BASE {SECRET}\n")
    return p


@pytest.fixture
def context(tmp_path) -> Path:
    c = tmp_path / "ctx"
    c.mkdir()
    (c / "real").write_text("BASE scratch\n")
    return c


def test_reads_a_file_and_follows_links_that_stay_inside(context):
    os.symlink("real", context / "MiniBox")
    (context / "sub").mkdir()
    os.symlink("../real", context / "sub" / "up")
    assert read_context_file(str(context), "MiniBox", "the MiniBox file", 1 << 20) == \
        b"BASE scratch\n"
    assert read_context_file(str(context), "sub/up", "the MiniBox file", 1 << 20) == \
        b"BASE scratch\n"


@pytest.mark.parametrize("target", ["abs", "rel", "dir"])
def test_a_link_that_leaves_the_context_is_refused_without_echoing(context, outside, target):
    link = {"abs": str(outside), "rel": "../outside.txt", "dir": str(outside.parent)}[target]
    os.symlink(link, context / "MiniBox")
    name = "MiniBox" if target != "dir" else "MiniBox/outside.txt"
    with pytest.raises(UserError) as info:
        read_context_file(str(context), name, "the MiniBox file", 1 << 20)
    text = info.value.render()
    assert "outside the build context" in text
    assert SECRET not in text and str(outside.parent) not in text


@pytest.mark.parametrize("special", ["fifo", "socket", "device"])
def test_a_special_file_is_refused_without_being_opened(context, special):
    path = context / "MiniBox"
    if special == "fifo":
        os.mkfifo(path)
    elif special == "socket":
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    else:   # a link to a device inside the context: a device node made in it
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))      # like /dev/zero
    result: dict = {}

    def read():
        try:
            read_context_file(str(context), "MiniBox", "the MiniBox file", 1 << 20)
        except UserError as e:
            result["error"] = e.message

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "reading blocked on a special file"
    assert "not a regular file" in result["error"]


def test_a_link_to_a_host_device_is_refused(context):
    os.symlink("/dev/zero", context / "MiniBox")
    with pytest.raises(UserError, match="outside the build context"):
        read_context_file(str(context), "MiniBox", "the MiniBox file", 1 << 20)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.txt", "a/../../x"])
def test_names_must_stay_relative(context, name):
    with pytest.raises(UserError, match="relative path inside"):
        read_context_file(str(context), name, "the MiniBox file", 1 << 20)


def test_oversized_file_is_refused(context):
    (context / "MiniBox").write_bytes(b"#" * 5000)
    with pytest.raises(UserError, match="larger than 4 KiB"):
        read_context_file(str(context), "MiniBox", "the MiniBox file", 4096)


def test_ignore_file_that_is_a_fifo_does_not_block(context):
    os.mkfifo(context / ".miniboxignore")
    with pytest.raises(UserError, match="not a regular file"):
        IgnoreMatcher.from_file(str(context))


# ---- trees of any depth -----------------------------------------------------------------------

def test_shutil_rmtree_cannot_remove_2000_levels_but_remove_tree_can(tmp_path):
    top = tmp_path / "deep"
    make_deep(top, 2000, name="level")
    os.symlink("/etc", top / "level" / "etc-link")          # never followed
    with pytest.raises(RecursionError):
        shutil.rmtree(top, ignore_errors=True)     # Python 3.11: why remove_tree exists
    assert top.exists()
    remove_tree(top)
    assert not top.exists() and os.path.exists("/etc/passwd")


def test_remove_tree_odd_inputs(tmp_path):
    remove_tree(tmp_path / "missing")                        # no error
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    os.symlink(tmp_path, tmp_path / "loop")
    remove_tree(tmp_path / "loop")                           # the link, not its target
    assert tmp_path.is_dir() and not (tmp_path / "loop").exists()
    wide = tmp_path / "wide"
    for i in range(300):
        (wide / str(i) / "sub").mkdir(parents=True)
        (wide / str(i) / "sub" / "f").write_text("x")
    remove_tree(wide)
    assert not wide.exists()

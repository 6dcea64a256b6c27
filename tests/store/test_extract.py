"""extract_layer on layers from elsewhere: formats, whiteouts, metadata, hostile entries."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import zstandard

from minibox.errors import StoreError, UserError
from minibox.store import LayerInfo
from minibox.store.layertar import commit_upper, extract_layer
from minibox.store.oci import MEDIA_LAYER

from .conftest import cap_net_bind_service, needs_root

pytestmark = needs_root


def make_tar(entries: list[tuple], fmt=tarfile.PAX_FORMAT) -> bytes:
    """entries: (name, type, extra) with extra = data / linkname / dict of TarInfo fields."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = 1_650_000_000
            data = None
            if kind == tarfile.REGTYPE:
                data = extra if isinstance(extra, bytes) else b""
                info.size = len(data)
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
            if isinstance(extra, dict):
                for key, value in extra.items():
                    setattr(info, key, value)
            info.mode = info.mode if isinstance(extra, dict) and "mode" in extra else (
                0o755 if kind == tarfile.DIRTYPE else 0o644)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def write_blob(tmp: Path, data: bytes, name: str = "layer") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.fixture
def dest(scratch):
    d = scratch / "dest"
    d.mkdir()
    return d


@pytest.mark.parametrize("compress", [lambda b: b, lambda b: gzip.compress(b, 6),
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["tar", "gzip", "zstd"])
def test_formats_are_sniffed_not_trusted(scratch, dest, compress):
    raw = make_tar([("etc", tarfile.DIRTYPE, None), ("etc/os-release", tarfile.REGTYPE,
                                                     b"ID=test\n")])
    blob = write_blob(scratch, compress(raw))
    diff_id = extract_layer(blob, MEDIA_LAYER, dest)                  # media type says plain
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (dest / "etc" / "os-release").read_text() == "ID=test\n"


def test_whiteouts_become_overlay_whiteouts(scratch, dest):
    blob = write_blob(scratch, make_tar([
        ("a", tarfile.DIRTYPE, None), ("a/.wh..wh..opq", tarfile.REGTYPE, b""),
        ("a/new", tarfile.REGTYPE, b"n"), ("a/.wh.old", tarfile.REGTYPE, b""),
        (".wh.top", tarfile.REGTYPE, b""), (".wh..wh.plnk", tarfile.DIRTYPE, None),
    ]))
    extract_layer(blob, MEDIA_LAYER, dest)
    assert os.getxattr(dest / "a", "trusted.overlay.opaque") == b"y"
    for wh in (dest / "a" / "old", dest / "top"):
        st = os.lstat(wh)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert sorted(os.listdir(dest)) == ["a", "top"]
    assert sorted(os.listdir(dest / "a")) == ["new", "old"]


def test_metadata_is_preserved(scratch, dest):
    cap = cap_net_bind_service()
    blob = write_blob(scratch, make_tar([
        ("bin", tarfile.DIRTYPE, {"mode": 0o755, "mtime": 1_000_000_000}),
        ("bin/su", tarfile.REGTYPE, {"mode": 0o4755, "uid": 0, "gid": 0}),
        ("bin/ping", tarfile.REGTYPE, {"pax_headers": {
            "SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}}),
        ("home", tarfile.DIRTYPE, {"mode": 0o755}),
        ("home/u", tarfile.DIRTYPE, {"mode": 0o2750, "uid": 1000, "gid": 1001}),
        ("home/u/f", tarfile.REGTYPE, {"uid": 1000, "gid": 1001, "mtime": 1_234_567_890}),
        ("tmp", tarfile.DIRTYPE, {"mode": 0o1777}),
        ("dev", tarfile.DIRTYPE, None),
        ("dev/null", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3, "mode": 0o666}),
        ("dev/sda", tarfile.BLKTYPE, {"devmajor": 8, "devminor": 0, "mode": 0o660}),
        ("run.fifo", tarfile.FIFOTYPE, {"mode": 0o600}),
        ("sh", tarfile.SYMTYPE, "/bin/busybox"),
        ("bin/su2", tarfile.LNKTYPE, "bin/su"),
    ]))
    extract_layer(blob, MEDIA_LAYER, dest)
    su = os.lstat(dest / "bin" / "su")
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert os.lstat(dest / "bin" / "su2").st_ino == su.st_ino
    assert os.getxattr(dest / "bin" / "ping", "security.capability") == cap
    u = os.lstat(dest / "home" / "u")
    assert (stat.S_IMODE(u.st_mode), u.st_uid, u.st_gid) == (0o2750, 1000, 1001)
    f = os.lstat(dest / "home" / "u" / "f")
    assert (f.st_uid, f.st_gid, int(f.st_mtime)) == (1000, 1001, 1_234_567_890)
    assert int(os.lstat(dest / "bin").st_mtime) == 1_000_000_000     # set after children
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    null = os.lstat(dest / "dev" / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(dest / "dev" / "sda").st_mode)
    assert stat.S_ISFIFO(os.lstat(dest / "run.fifo").st_mode)
    assert os.readlink(dest / "sh") == "/bin/busybox"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_later_entries_replace_earlier_ones(scratch, dest):
    blob = write_blob(scratch, make_tar([
        ("x", tarfile.DIRTYPE, None), ("x/inner", tarfile.REGTYPE, b"i"),
        ("x", tarfile.REGTYPE, b"now a file"),
        ("y", tarfile.REGTYPE, b"file"), ("y", tarfile.SYMTYPE, "target"),
        ("z", tarfile.DIRTYPE, {"mode": 0o700}), ("z/keep", tarfile.REGTYPE, b"k"),
        ("z", tarfile.DIRTYPE, {"mode": 0o755}),
    ]))
    extract_layer(blob, MEDIA_LAYER, dest)
    assert (dest / "x").read_text() == "now a file"
    assert os.readlink(dest / "y") == "target"
    assert (dest / "z" / "keep").read_text() == "k"
    assert stat.S_IMODE((dest / "z").stat().st_mode) == 0o755


HOSTILE = [
    ([("../evil", tarfile.REGTYPE, b"x")], "../evil"),
    ([("a/../../evil", tarfile.REGTYPE, b"x")], "a/../../evil"),
    ([("/etc/evil", tarfile.REGTYPE, b"x")], "/etc/evil"),
    ([("h", tarfile.LNKTYPE, "../outside")], "../outside"),
    ([("h", tarfile.LNKTYPE, "/etc/passwd")], "/etc/passwd"),
    ([("h", tarfile.LNKTYPE, "missing")], "missing"),
    ([("esc", tarfile.SYMTYPE, "{outside}"), ("esc/evil", tarfile.REGTYPE, b"x")], "esc/evil"),
    ([("esc", tarfile.SYMTYPE, "{outside}"), ("esc/sub/evil", tarfile.REGTYPE, b"x")],
     "esc/sub/evil"),
    ([("esc", tarfile.SYMTYPE, "{outside}"), ("esc", tarfile.DIRTYPE, None),
      ("esc/ok", tarfile.REGTYPE, b"x"), ("l2", tarfile.SYMTYPE, "{outside}"),
      ("l2/.wh.victim", tarfile.REGTYPE, b"")], "l2/.wh.victim"),
]


@pytest.mark.parametrize("entries, culprit", HOSTILE)
def test_hostile_entries_are_refused(scratch, dest, entries, culprit):
    outside = scratch / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    entries = [(n, t, e.format(outside=outside) if isinstance(e, str) else e)
               for n, t, e in entries]
    blob = write_blob(scratch, make_tar(entries, fmt=tarfile.GNU_FORMAT))
    with pytest.raises(UserError) as err:
        extract_layer(blob, MEDIA_LAYER, dest)
    assert repr(culprit) in err.value.message
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "untouched"
    assert not (scratch / "evil").exists()


def test_garbage_is_a_user_error(scratch, dest):
    blob = write_blob(scratch, gzip.compress(b"this is not a tar" * 100))
    with pytest.raises(UserError, match="not a valid"):
        extract_layer(blob, MEDIA_LAYER, dest)
    truncated = write_blob(scratch, gzip.compress(make_tar([("f", tarfile.REGTYPE,
                                                             os.urandom(5000))]))[:300], "t")
    with pytest.raises(UserError):
        extract_layer(truncated, MEDIA_LAYER, scratch)


def test_gnu_tar_reads_what_we_write_and_we_read_gnu_tar(store, scratch):
    """Cross-check with GNU tar in both directions (long names, odd bytes, big ids)."""
    src = scratch / "src"
    (src / ("d" * 120)).mkdir(parents=True)
    (src / ("d" * 120) / ("f" * 120)).write_text("long")
    os.chown(src / ("d" * 120) / ("f" * 120), 3_000_000, 3_000_001)   # beyond ustar's 7 digits
    with open(os.path.join(os.fsencode(src), b"\xff\xfe"), "wb") as f:
        f.write(b"binary name")
    blob = scratch / "gnu.tar"
    subprocess.run(["tar", "--xattrs", "--numeric-owner", "-C", str(src), "-cf", str(blob),
                    "."], check=True)
    ours = scratch / "ours"
    ours.mkdir()
    extract_layer(blob, MEDIA_LAYER, ours)
    st = os.lstat(ours / ("d" * 120) / ("f" * 120))
    assert (st.st_uid, st.st_gid) == (3_000_000, 3_000_001)
    assert Path(os.fsdecode(os.path.join(os.fsencode(ours), b"\xff\xfe"))).read_bytes() \
        == b"binary name"

    layer = commit_upper(store, ours, "none")
    back = scratch / "back"
    back.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-C", str(back), "-xf",
                    str(store.blob_path(layer.digest))], check=True)
    st = os.lstat(back / ("d" * 120) / ("f" * 120))
    assert (st.st_uid, st.st_gid) == (3_000_000, 3_000_001)
    assert (back / ("d" * 120) / ("f" * 120)).read_text() == "long"


def test_ensure_layer_dir_reextracts_and_verifies(store):
    upper = store.tmp_dir("u-")
    (upper / "f").write_text("content")
    layer = commit_upper(store, upper, "zstd")
    before = sorted(os.listdir(layer.dir))
    subprocess.run(["rm", "-rf", str(layer.dir)], check=True)
    assert store.ensure_layer_dir(layer) == layer.dir
    assert sorted(os.listdir(layer.dir)) == before
    assert LayerInfo.from_dict(layer.to_dict()) == layer

    lie = LayerInfo(diff_id="sha256:" + "4" * 64, digest=layer.digest, size=layer.size,
                    media_type=layer.media_type)
    with pytest.raises(StoreError, match="unpacks to"):
        store.ensure_layer_dir(lie)
    assert not store.layer_dir(lie.diff_id).exists()
    assert list(store.layout.tmp.iterdir()) == []


def test_killed_extraction_leaves_no_layer_dir(store, scratch):
    upper = store.tmp_dir("u-")
    for i in range(400):
        (upper / f"f{i}").write_bytes(os.urandom(64_000))
    layer = commit_upper(store, upper, "gzip")
    subprocess.run(["rm", "-rf", str(layer.dir)], check=True)
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from minibox.store import Store, LayerInfo
        s = Store(Path({str(store.root)!r}))
        s.ensure_layer_dir(LayerInfo.from_dict(json.loads({repr(__import__('json').dumps(
            layer.to_dict()))})))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(2000):                     # wait until extraction is under way
            work = [p for p in store.layout.tmp.iterdir() if p.name.startswith("layer-")]
            if work and len(os.listdir(work[0])) > 20:
                break
            if proc.poll() is not None:
                pytest.skip("extraction finished before it could be interrupted")
            import time
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    if proc.returncode == 0:
        pytest.skip("extraction finished before it could be interrupted")
    assert not layer.dir.exists()
    assert store.ensure_layer_dir(layer) == layer.dir and len(os.listdir(layer.dir)) == 400
    assert store.clean_tmp(older_than=0) == 1

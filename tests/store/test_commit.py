"""commit_upper on real overlayfs upper dirs, and the round trip back through extract_layer."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from minibox.errors import StoreError
from minibox.store.compress import open_decompressed
from minibox.store.layertar import commit_upper, extract_layer

from .conftest import cap_net_bind_service, needs_root, overlay

pytestmark = needs_root

CAP = cap_net_bind_service()
LONG = "deep/" + "x" * 150
ODD = b"caf\xe9-latin1"


def build_lower(lower: Path) -> None:
    for rel, text in {"gone.txt": "bye", "olddir/a": "a", "olddir/sub/b": "b",
                      "keep/file": "kept", "modify.txt": "v1\n"}.items():
        (lower / rel).parent.mkdir(parents=True, exist_ok=True)
        (lower / rel).write_text(text)


def change_merged(m: Path) -> None:
    """What a build step might do: delete, replace a dir, modify, add every kind of entry."""
    (m / "gone.txt").unlink()
    shutil.rmtree(m / "olddir")
    (m / "olddir").mkdir()
    (m / "olddir" / "fresh").write_text("fresh")
    with open(m / "modify.txt", "a") as f:
        f.write("v2\n")
    (m / "bin").mkdir()
    (m / "bin" / "suid").write_bytes(b"\x7fELF fake")
    os.chown(m / "bin" / "suid", 1000, 1000)
    os.chmod(m / "bin" / "suid", 0o4755)
    (m / "bin" / "capped").write_bytes(b"ping")
    os.setxattr(m / "bin" / "capped", "security.capability", CAP)
    (m / "note").write_text("n")
    os.setxattr(m / "note", "user.note", b"hello")
    os.symlink("/etc/target", m / "link")
    (m / "hard1").write_text("linked")
    os.link(m / "hard1", m / "hard2")
    os.mkfifo(m / "fifo")
    os.mknod(m / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(m / "loop", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    os.chmod(m / "loop", 0o660)                                   # past the umask
    (m / "tmp").mkdir()
    os.chmod(m / "tmp", 0o1777)
    (m / "shared").mkdir()
    os.chown(m / "shared", 0, 50)
    os.chmod(m / "shared", 0o2775)
    (m / LONG).parent.mkdir(parents=True)
    (m / LONG).write_text("long")
    with open(os.path.join(os.fsencode(m), ODD), "wb") as f:
        f.write(b"latin1 name")


def describe(root: Path) -> dict:
    """Everything a container would see of a tree (overlay bookkeeping left out)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                      for k in os.listxattr(path, follow_symlinks=False)
                      if not k.startswith("trusted.overlay.")}
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = st.st_rdev
            mtime = None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
            out[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777,
                                                st.st_uid, st.st_gid, content, xattrs, mtime)
    return out


def members(store, layer) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    """The tar's members in order, and the content of its regular files."""
    with open(store.blob_path(layer.digest), "rb") as raw:
        stream, kind = open_decompressed(raw)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            found, data = [], {}
            for m in tar:
                if m.isreg():
                    data[m.name] = tar.extractfile(m).read()
                found.append(m)
    return found, data


@pytest.fixture
def changed_upper(store, scratch):
    """An upper dir produced by a real overlay mount, and the merged view it produced."""
    lower, upper, work = scratch / "lower", store.tmp_dir("upper-"), store.tmp_dir("work-")
    lower.mkdir()
    build_lower(lower)
    with overlay(scratch / "merged", [lower], upper, work) as merged:
        change_merged(merged)
        view = describe(merged)
    return lower, upper, view


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_commit_upper_tar_entries(store, changed_upper, compression):
    lower, upper, _ = changed_upper
    assert stat.S_ISCHR(os.lstat(upper / "gone.txt").st_mode)          # overlay's whiteout
    layer = commit_upper(store, upper, compression)
    assert not upper.exists() and layer.dir == store.layer_dir(layer.diff_id)
    assert (layer.digest == layer.diff_id) == (compression == "none")
    assert store.blob_path(layer.digest).stat().st_size == layer.size
    ms, data = members(store, layer)
    by = {m.name: m for m in ms}
    names = [m.name for m in ms]

    assert "gone.txt" not in by and by[".wh.gone.txt"].isreg() and by[".wh.gone.txt"].size == 0
    assert names[names.index("olddir") + 1] == "olddir/.wh..wh..opq"
    assert "olddir/fresh" in by and "olddir/a" not in by
    assert data["modify.txt"] == b"v1\nv2\n"
    assert "keep/file" not in by                                      # unchanged: lower
    suid = by["bin/suid"]
    assert (suid.mode, suid.uid, suid.gid) == (0o4755, 1000, 1000)
    assert by["bin/capped"].pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAP
    assert by["note"].pax_headers["SCHILY.xattr.user.note"] == "hello"
    assert by["link"].issym() and by["link"].linkname == "/etc/target"
    assert by["hard2"].islnk() and by["hard2"].linkname == "hard1"
    assert by["fifo"].isfifo()
    assert by["null"].ischr() and (by["null"].devmajor, by["null"].devminor) == (1, 3)
    assert by["loop"].isblk() and by["loop"].mode == 0o660
    assert by["tmp"].mode == 0o1777 and by["shared"].mode == 0o2775 and by["shared"].gid == 50
    assert data[LONG] == b"long"
    assert data[os.fsdecode(ODD)] == b"latin1 name"
    for m in ms:
        assert m.uname == "" and m.gname == ""
        assert not [k for k in m.pax_headers if "trusted.overlay" in k], m.name
    assert names == [m.name for m in members(store, layer)[0]]            # stable order


def test_committed_dir_is_a_clean_overlay_layer(store, changed_upper):
    _, upper, _ = changed_upper
    assert any(k.startswith("trusted.overlay.") and k != "trusted.overlay.opaque"
               for p in upper.rglob("*") for k in os.listxattr(p, follow_symlinks=False))
    layer = commit_upper(store, upper)
    d = layer.dir
    assert stat.S_ISCHR(os.lstat(d / "gone.txt").st_mode)
    assert os.lstat(d / "gone.txt").st_rdev == 0
    assert os.getxattr(d / "olddir", "trusted.overlay.opaque") == b"y"
    stale = [(p, k) for p in d.rglob("*") for k in os.listxattr(p, follow_symlinks=False)
             if k.startswith("trusted.overlay.") and k != "trusted.overlay.opaque"]
    assert stale == []
    assert os.getxattr(d / "bin" / "capped", "security.capability") == CAP
    assert stat.S_IMODE(d.stat().st_mode) == 0o755


def test_round_trip_through_extract(store, changed_upper, scratch):
    """The extracted blob and the committed dir, mounted over the lower, both reproduce
    exactly what the build saw in its merged view."""
    lower, upper, view = changed_upper
    layer = commit_upper(store, upper, "gzip")
    extracted = scratch / "extracted"
    extracted.mkdir()
    assert extract_layer(store.blob_path(layer.digest), layer.media_type, extracted) \
        == layer.diff_id
    for top in (extracted, layer.dir):
        with overlay(scratch / "check", [top, lower], options="") as merged:
            seen = describe(merged)
            assert os.stat(merged / "hard1").st_ino == os.stat(merged / "hard2").st_ino
        assert seen == view
        assert "gone.txt" not in seen and "olddir/a" not in seen


def _same_tree(root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(os.urandom(0) + b"same")
    os.symlink("f", root / "d" / "s")
    for p in [root / "d" / "s", root / "d" / "f", root / "d"]:
        os.utime(p, (1_600_000_000, 1_600_000_000), follow_symlinks=False)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_commit_is_deterministic_and_dedupes(store, compression):
    first, second = store.tmp_dir("u1-"), store.tmp_dir("u2-")
    _same_tree(first)
    _same_tree(second)
    a = commit_upper(store, first, compression)
    (a.dir / "marker").write_text("the first dir stays")
    b = commit_upper(store, second, compression)
    assert (a.diff_id, a.digest, a.size) == (b.diff_id, b.digest, b.size)
    assert not second.exists() and (b.dir / "marker").exists()


def test_gzip_output_is_plain_gzip(store, scratch):
    upper = store.tmp_dir("u-")
    (upper / "big").write_bytes(os.urandom(3 << 20) + b"z" * (3 << 20))
    layer = commit_upper(store, upper, "gzip")
    subprocess.run(["gzip", "-t", str(store.blob_path(layer.digest))], check=True)
    out = subprocess.run(f"gzip -dc {store.blob_path(layer.digest)} | sha256sum", shell=True,
                         check=True, capture_output=True, text=True).stdout
    assert "sha256:" + out.split()[0] == layer.diff_id


def test_redirected_dir_is_refused(store, scratch):
    lower, upper, work = scratch / "lower", store.tmp_dir("upper-"), store.tmp_dir("work-")
    (lower / "src").mkdir(parents=True)
    (lower / "src" / "f").write_text("f")
    with overlay(scratch / "m", [lower], upper, work, options="redirect_dir=on") as m:
        os.rename(m / "src", m / "dst")
    blobs_before = set(store.layout.blobs.iterdir())
    with pytest.raises(StoreError, match="redirect_dir"):
        commit_upper(store, upper)
    assert set(store.layout.blobs.iterdir()) == blobs_before
    assert upper.exists() and list(store.layout.layers.iterdir()) == []


def test_commit_refuses_a_mounted_upper(store):
    upper = store.tmp_dir("upper-")
    (upper / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(upper / "mnt")], check=True)
    try:
        with pytest.raises(StoreError, match="still mounted"):
            commit_upper(store, upper)
    finally:
        subprocess.run(["umount", str(upper / "mnt")], check=True)


def test_commit_refuses_a_merged_dir_but_takes_a_tmpfs_upper(store, scratch):
    lowers = [scratch / "l1", scratch / "l2"]
    for lower in lowers:
        lower.mkdir()
    with overlay(scratch / "merged", lowers, options="") as merged:
        with pytest.raises(StoreError, match="still mounted"):
            commit_upper(store, merged)
    upper = scratch / "tmpfs-upper"                    # another filesystem: no rename
    upper.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(upper)], check=True)
    try:
        (upper / "f").write_text("from tmpfs")
        layer = commit_upper(store, upper, "gzip")
        assert (layer.dir / "f").read_text() == "from tmpfs"
        assert os.listdir(upper) == []
    finally:
        subprocess.run(["umount", str(upper)], check=True)


def test_clamp_mtime_makes_trees_made_at_other_times_commit_alike(store):
    epoch = 1_650_000_000
    first, second = store.tmp_dir("c1-"), store.tmp_dir("c2-")
    for upper, when in ((first, 1_700_000_000), (second, 1_800_000_000)):
        (upper / "dir").mkdir()
        (upper / "dir" / "f").write_text("same\n")
        os.symlink("f", upper / "dir" / "link")
        (upper / "old").write_text("older than the epoch\n")
        for p in (upper / "dir" / "f", upper / "dir" / "link", upper / "dir"):
            os.utime(p, (when, when), follow_symlinks=False)
        os.utime(upper / "old", (1_500_000_000, 1_500_000_000))
    a = commit_upper(store, first, clamp_mtime=epoch)
    b = commit_upper(store, second, clamp_mtime=epoch)
    assert (a.diff_id, a.digest) == (b.diff_id, b.digest)
    with tarfile.open(store.blob_path(a.digest)) as t:
        mtimes = {m.name: m.mtime for m in t.getmembers()}
    assert mtimes == {"dir": epoch, "dir/f": epoch, "dir/link": epoch, "old": 1_500_000_000}


@pytest.mark.parametrize("sizes", [[10, 20], [600_000, 600_000, 5]], ids=["inline", "thread"])
def test_background_sink_keeps_order_and_reports_errors(sizes):
    """Small output is written at the end in the caller's thread, larger output on the
    sink's thread: either way every byte arrives, in order, and a failure surfaces."""
    from minibox.store.compress import BackgroundSink

    class Collect:
        def __init__(self, fail_at: int | None = None):
            self.got, self.fail_at = bytearray(), fail_at

        def write(self, data):
            if self.fail_at is not None and len(self.got) + len(data) > self.fail_at:
                raise OSError(28, "No space left on device")
            self.got += data
            return len(data)

    chunks = [bytes([i]) * n for i, n in enumerate(sizes)]
    ok = Collect()
    with BackgroundSink(ok) as sink:
        for c in chunks:
            sink.write(c)
    assert bytes(ok.got) == b"".join(chunks)
    with pytest.raises(OSError, match="No space"):
        with BackgroundSink(Collect(fail_at=sizes[0])) as sink:
            for c in chunks:
                sink.write(c)

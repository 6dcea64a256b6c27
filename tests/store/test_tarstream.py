"""The tar header emitter against Python's tarfile reader, and compression determinism."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from minibox.store import tarstream as ts
from minibox.store.compress import ParallelGzip

from .conftest import needs_root

names = st.lists(st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")),
    min_size=1, max_size=8).map(lambda parts: b"/".join(parts))


@settings(max_examples=150, deadline=None)
@given(name=names, uid=st.integers(0, 2**32 - 2), gid=st.integers(0, 2**32 - 2),
       mtime=st.integers(-2**33, 2**36), mode=st.integers(0, 0o7777),
       data=st.binary(max_size=1500), link=names,
       xattr=st.binary(max_size=64))
def test_headers_round_trip_through_tarfile(name, uid, gid, mtime, mode, data, link, xattr):
    blob = (ts.header(name, mode=mode, uid=uid, gid=gid, size=len(data), mtime=mtime,
                      typeflag=ts.REGTYPE, xattrs={b"user.x": xattr})
            + data + ts.padding(len(data))
            + ts.header(name + b"-l", mode=0o777, uid=0, gid=0, size=0, mtime=0,
                        typeflag=ts.SYMTYPE, linkname=link)
            + ts.END_OF_ARCHIVE)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        reg, sym = tar.getmembers()
        assert os.fsencode(reg.name) == name
        assert (reg.uid, reg.gid, int(reg.mtime), reg.mode) == (uid, gid, mtime, mode)
        assert tar.extractfile(reg).read() == data
        assert reg.pax_headers["SCHILY.xattr.user.x"].encode("utf-8", "surrogateescape") \
            == xattr
        assert (reg.uname, reg.gname) == ("", "")
        assert os.fsencode(sym.linkname) == link


def test_parallel_gzip_is_valid_and_thread_count_free():
    data = os.urandom(1 << 20) + b"compressible " * 300_000 + os.urandom(12345)
    outputs = set()
    for threads in (1, 2, 4):
        gz = ParallelGzip(1)
        gz._threads = threads
        pieces = [gz.compress(data[i:i + 300_000]) for i in range(0, len(data), 300_000)]
        out = b"".join(pieces) + gz.flush()
        assert gzip.decompress(out) == data
        outputs.add(out)
    assert len(outputs) == 1
    empty = ParallelGzip(1)
    assert gzip.decompress(empty.compress(b"") + empty.flush()) == b""


@needs_root
def test_layer_digests_do_not_depend_on_cpu_count(store):
    """One CPU or all of them: the same tree gives the same gzip and zstd blobs."""
    script = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from minibox.store import Store
        from minibox.store.layertar import commit_upper
        store = Store(Path(sys.argv[1]))
        up = store.tmp_dir("u-")
        (up / "f").write_bytes(b"".join(i.to_bytes(4, "little") for i in range(3_000_000)))
        os.utime(up / "f", (1, 1))
        print(commit_upper(store, up, sys.argv[2]).digest)
    """)
    for compression in ("gzip", "zstd"):
        digests = set()
        for cpus in ("0", f"0-{os.cpu_count() - 1}"):
            out = subprocess.run(["taskset", "-c", cpus, sys.executable, "-c", script,
                                  str(store.root), compression],
                                 check=True, capture_output=True, text=True).stdout
            digests.add(out.strip())
        assert len(digests) == 1, compression

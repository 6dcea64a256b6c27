"""Layers as tars: committing an overlayfs upper dir, and extracting a layer blob.

``commit_upper`` turns an *unmounted* overlay upper dir into an OCI layer in one pass over the
tree: the tar stream is hashed (diff_id), optionally compressed and hashed again (digest) and
written into a blob writer.  Overlay whiteouts (0:0 char devices) become ``.wh.NAME`` files,
``trusted.overlay.opaque=y`` becomes ``.wh..wh..opq``, other ``trusted.overlay.*`` xattrs are
dropped, everything else (modes, numeric owners, xattrs such as security.capability, links,
devices, FIFOs, mtimes) is kept.  Entries are sorted and carry no user or group names, so the
same tree always gives the same digest.  The upper dir then becomes ``layers/<diff_id hex>``.

The upper must have been written by overlayfs mounted without ``redirect_dir`` and
``metacopy`` (a renamed lower dir or a metadata-only copy-up cannot be expressed as a tar
diff without the lower layers); such entries are refused.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import zstandard

from minibox.errors import StoreError, UserError
from minibox.store import tarstream as ts
from minibox.store.compress import BackgroundSink, LayerPipeline, Sink
from minibox.store.layerinfo import LayerInfo
from minibox.store.layerreader import (INFLATE_ERRORS, Chunks, LayerReader, file_chunks,
                                       open_tar)
from minibox.store.layout import mounts_under, remove_tree
from minibox.store.oci import LAYER_MEDIA_TYPES
from minibox.store.untar import OPAQUE_MARKER, WHITEOUT_PREFIX, LayerExtractor, Limits

if TYPE_CHECKING:
    from minibox.store import Store

__all__ = ["LayerInfo", "commit_upper", "extract_layer", "extract_stream", "write_tree_tar"]

_FLUSH_AT = 1 << 20
_READ_CHUNK = 1 << 20
_OVERLAY_XATTR = "trusted.overlay."
_REFUSED_XATTRS = {"trusted.overlay.redirect": "a renamed directory (redirect_dir=on)",
                   "trusted.overlay.metacopy": "a metadata-only copy-up (metacopy=on)"}
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


def commit_upper(store: "Store", upper_dir: Path, compression: str = "none",
                 clamp_mtime: int | None = None) -> LayerInfo:
    """Commit ``upper_dir`` as a layer blob and adopt it as ``layers/<diff_id hex>``.

    ``clamp_mtime`` (SOURCE_DATE_EPOCH): no entry in the tar is newer than this, so the same
    build on another machine, or later, gives the same digest.

    ``upper_dir`` is consumed: it is renamed into the store or, when that layer already
    exists, removed.  It must not be mounted any more (nor have anything mounted below it).
    """
    upper_dir = Path(upper_dir).absolute()
    if not upper_dir.is_dir():
        raise UserError(f"upper dir {upper_dir} does not exist")
    for point, fstype in mounts_under(upper_dir):
        if point != upper_dir or fstype == "overlay":  # an upper on its own tmpfs is fine
            raise StoreError(f"cannot commit {upper_dir}: {point} is still mounted",
                             hint="unmount the sandbox before committing its upper dir")
    if compression not in LAYER_MEDIA_TYPES:
        raise UserError(f"unknown layer compression {compression!r}",
                        hint="use one of: " + ", ".join(LAYER_MEDIA_TYPES))
    with store.open_blob_writer(LAYER_MEDIA_TYPES[compression]) as blob:
        pipeline = LayerPipeline(blob, compression)
        try:
            with BackgroundSink(pipeline) as sink:
                entries = write_tree_tar(upper_dir, sink, strip_overlay_xattrs=True,
                                         clamp_mtime=clamp_mtime)
            diff_id = pipeline.finish()
        finally:
            pipeline.close()
    desc = blob.descriptor
    layer = LayerInfo(diff_id=diff_id or desc.digest, digest=desc.digest, size=desc.size,
                      media_type=desc.media_type, empty=entries == 0)
    return _adopt_upper(store, upper_dir, layer)


def _adopt_upper(store: "Store", upper_dir: Path, layer: LayerInfo) -> LayerInfo:
    if not store.has_layer_dir(layer.diff_id):
        os.chown(upper_dir, 0, 0)
        os.chmod(upper_dir, 0o755)                   # as an extracted layer root would be
        try:
            return _with_dir(layer, store.adopt_layer_dir(upper_dir, layer.diff_id))
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EBUSY):
                raise StoreError(f"cannot move {upper_dir} into the store: {e}") from e
            store.ensure_layer_dir(layer)            # another filesystem or a mount point:
                                                     # unpack the blob instead
    remove_tree(upper_dir)
    return _with_dir(layer, store.layer_dir(layer.diff_id))


def _with_dir(layer: LayerInfo, path: Path) -> LayerInfo:
    return LayerInfo(layer.diff_id, layer.digest, layer.size, layer.media_type, layer.empty,
                     dir=path)


def extract_layer(blob_path: Path, media_type: str, dest_dir: Path,
                  limits: Limits | None = None) -> str:
    """Unpack a layer (plain, gzip or zstd, told apart by magic bytes) into ``dest_dir`` in
    overlay format; returns the diff_id (sha256 of the uncompressed tar stream).

    ``media_type`` only names the blob in errors: the bytes decide the compression.
    Malformed archives, unsafe entries and archives over ``limits`` (tar bombs: too many
    bytes or entries, or a compression ratio no real layer has) raise UserError; failures
    to write, StoreError.
    """
    with open(blob_path, "rb", buffering=0) as raw:
        return extract_stream(file_chunks(raw), media_type, dest_dir, f"{blob_path}", limits)


def extract_stream(chunks: Chunks, media_type: str, dest_dir: Path, label: str,
                   limits: Limits | None = None) -> str:
    """``extract_layer`` on bytes read once (a download or an upload as it arrives):
    ``chunks()`` gives the next compressed bytes, ``b""`` at the end."""
    limits = limits or Limits.from_env()
    try:
        reader = LayerReader(chunks, limits, media_type or "layer")
        extractor = LayerExtractor(Path(dest_dir), limits)
        try:
            extractor.extract_all(open_tar(reader))
        finally:
            extractor.close()
        reader.drain()
    except (tarfile.TarError, EOFError, zstandard.ZstdError, *INFLATE_ERRORS) as e:
        raise UserError(f"{label} is not a valid {media_type or 'layer'} archive: {e}") from e
    except OSError as e:
        raise StoreError(f"cannot extract {label} into {dest_dir}: {e}") from e
    return reader.digest


# -- the writer ---------------------------------------------------------------------------

def write_tree_tar(root: Path, sink: Sink, *, strip_overlay_xattrs: bool = False,
                   clamp_mtime: int | None = None) -> int:
    """Write the tree under ``root`` (root itself excluded) as a layer tar; returns the
    number of entries.  With ``strip_overlay_xattrs`` the stale ``trusted.overlay.*``
    attributes (origin, impure ...) are also removed from the tree itself, so that it reads
    the same as a layer extracted from the tar.  ``clamp_mtime``: entries newer than that
    get it as their mtime."""
    writer = _TreeTarWriter(sink, strip_overlay_xattrs, clamp_mtime)
    count = 0
    for rel, path, st in _walk(os.fsencode(root)):
        writer.entry(rel, path, st)
        count += 1
    writer.put(ts.END_OF_ARCHIVE)
    writer.flush()
    return count


def _walk(root: bytes) -> Iterator[tuple[bytes, bytes, os.stat_result]]:
    """(relative name, path, lstat) depth-first, directories before their contents,
    siblings in byte order."""
    stack = [iter(sorted(os.listdir(root)))]
    prefixes = [b""]
    while stack:
        name = next(stack[-1], None)
        if name is None:
            stack.pop()
            prefixes.pop()
            continue
        rel = prefixes[-1] + name
        path = root + b"/" + rel
        st = os.lstat(path)
        yield rel, path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append(iter(sorted(os.listdir(path))))
            prefixes.append(rel + b"/")


class _TreeTarWriter:
    def __init__(self, sink: Sink, strip_overlay_xattrs: bool, clamp_mtime: int | None = None):
        self._sink = sink
        self._strip = strip_overlay_xattrs
        self._clamp = clamp_mtime
        self._buf = bytearray()
        self._links: dict[tuple[int, int], bytes] = {}

    def put(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._sink.write(self._buf)
            self._buf = bytearray()

    def entry(self, rel: bytes, path: bytes, st: os.stat_result) -> None:
        mode = st.st_mode
        mtime = st.st_mtime_ns // 1_000_000_000
        if self._clamp is not None and mtime > self._clamp:
            mtime = self._clamp
        meta = {"mode": mode, "uid": st.st_uid, "gid": st.st_gid, "mtime": mtime}
        if stat.S_ISCHR(mode) and st.st_rdev == 0:      # an overlay whiteout
            head, _, base = rel.rpartition(b"/")
            name = head + b"/" + WHITEOUT_PREFIX + base if head else WHITEOUT_PREFIX + base
            self.put(ts.header(name, **{**meta, "mode": 0}, size=0, typeflag=ts.REGTYPE))
            return
        if stat.S_ISSOCK(mode):
            return                                      # tar cannot carry a socket
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                self.put(ts.header(rel, **meta, size=0, typeflag=ts.LNKTYPE, linkname=first))
                return
        xattrs, opaque = self._xattrs(path, rel)
        if stat.S_ISREG(mode):
            self._regular(rel, path, st, meta, xattrs)
        elif stat.S_ISDIR(mode):
            self.put(ts.header(rel + b"/", **meta, size=0, typeflag=ts.DIRTYPE, xattrs=xattrs))
            if opaque:
                self.put(ts.header(rel + b"/" + OPAQUE_MARKER, **{**meta, "mode": mode & 0o777},
                                   size=0, typeflag=ts.REGTYPE))
        elif stat.S_ISLNK(mode):
            self.put(ts.header(rel, **meta, size=0, typeflag=ts.SYMTYPE,
                               linkname=os.readlink(path), xattrs=xattrs))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            self.put(ts.header(rel, **meta, size=0,
                               typeflag=ts.CHRTYPE if stat.S_ISCHR(mode) else ts.BLKTYPE,
                               devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev),
                               xattrs=xattrs))
        elif stat.S_ISFIFO(mode):
            self.put(ts.header(rel, **meta, size=0, typeflag=ts.FIFOTYPE, xattrs=xattrs))

    def _regular(self, rel: bytes, path: bytes, st: os.stat_result, meta: dict,
                 xattrs: dict[bytes, bytes]) -> None:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except PermissionError:                         # O_NOATIME needs ownership
            fd = os.open(path, _OPEN_FLAGS & ~getattr(os, "O_NOATIME", 0))
        try:
            size = st.st_size
            self.put(ts.header(rel, **meta, size=size, typeflag=ts.REGTYPE, xattrs=xattrs))
            if size <= _FLUSH_AT:
                data = os.read(fd, size) if size else b""
                while len(data) < size:
                    more = os.read(fd, size - len(data))
                    if not more:
                        raise _changed(rel)
                    data += more
                self.put(data)
            else:
                self.flush()
                self._stream_file(fd, size, rel)
            self.put(ts.padding(size))
        finally:
            os.close(fd)

    def _stream_file(self, fd: int, size: int, rel: bytes) -> None:
        left = size
        while left:
            data = os.read(fd, min(left, _READ_CHUNK))     # a new buffer: handed over
            if not data:
                raise _changed(rel)
            self._sink.write(data)
            left -= len(data)

    def _xattrs(self, path: bytes, rel: bytes) -> tuple[dict[bytes, bytes], bool]:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return {}, False
            raise
        out: dict[bytes, bytes] = {}
        opaque = False
        for name in names:
            value = os.getxattr(path, name, follow_symlinks=False)
            if not name.startswith(_OVERLAY_XATTR):
                out[os.fsencode(name)] = value
                continue
            if name in _REFUSED_XATTRS:
                raise StoreError(f"cannot commit {os.fsdecode(rel)!r}: it is "
                                 f"{_REFUSED_XATTRS[name]}",
                                 hint="mount the build overlay with redirect_dir=off,"
                                      "metacopy=off")
            if name == "trusted.overlay.opaque" and value == b"y":
                opaque = True
            elif self._strip:
                os.removexattr(path, name, follow_symlinks=False)
        return out, opaque


def _changed(rel: bytes) -> StoreError:
    return StoreError(f"{os.fsdecode(rel)!r} shrank while it was being committed",
                      hint="nothing may write to an upper dir while it is committed")

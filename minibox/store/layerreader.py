"""Reading a layer's tar stream fast, from a file or from a download as it arrives.

The compressed bytes come in large chunks; each is decompressed in one call (gzip through
ISA-L's inflate when ``isal`` is installed, zlib otherwise; zstd through ``zstandard``),
hashed (the diff_id is the sha256 of the uncompressed stream) and checked against the size
and compression-ratio limits as it comes.  ``tarfile`` then reads from a forward-only file
whose small reads (headers) cost a slice, not a chain of Python readers: this is where a
pull or a load spent most of its time with ``tarfile``'s own stream mode over ``GzipFile``.
The compression is told by magic bytes, never by what a media type claims.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from typing import Callable

import zstandard

from minibox.store.compress import sniff
from minibox.store.untar import Limits

try:                                      # ISA-L: the same bytes out, about twice as fast
    from isal import isal_zlib as _inflate
    INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _inflate.error)
except ImportError:                       # pragma: no cover - isal is a dependency
    _inflate = zlib
    INFLATE_ERRORS = (zlib.error,)

CHUNK = 1 << 20                           # compressed bytes read at a time
_OUT = 4 << 20                            # at most this much decompressed per step
_GZIP_MAGIC = b"\x1f\x8b"

Chunks = Callable[[], bytes]              # the next compressed bytes; b"" at the end


class LayerReader:
    """The uncompressed tar stream of a layer: ``read``, ``tell`` and a forward-only
    ``seek`` (what ``tarfile.TarFile`` in mode "r" needs), the running ``digest`` and
    ``size``, and the ``compressed`` bytes consumed."""

    def __init__(self, chunks: Chunks, limits: Limits, what: str, *, hashed: bool = True):
        self._chunks = chunks
        self._limits = limits
        self._what = what
        self._hash = hashlib.sha256() if hashed else None   # no digest: not a layer
        self.size = 0                     # uncompressed bytes produced
        self.compressed = 0               # compressed bytes consumed
        self._pos = 0                     # what the tar reader has read
        self._buf = b""
        self._at = 0
        first = self._pull()
        while len(first) < 8 and (more := self._pull()):
            first += more                 # enough to tell the compression
        self.kind = sniff(first[:8])
        self._steps = self._decoder(first)

    # -- the file interface --------------------------------------------------------------
    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        avail = len(self._buf) - self._at
        if avail >= size:
            out = self._buf[self._at:self._at + size]
            self._at += size
            self._pos += size
            return out
        parts = [self._buf[self._at:]] if avail else []
        need = size - avail
        self._buf, self._at = b"", 0
        while need > 0:
            block = next(self._steps, b"")
            if not block:
                break
            if len(block) <= need:
                parts.append(block)
                need -= len(block)
            else:
                parts.append(block[:need])
                self._buf, self._at = block, need
                need = 0
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos += len(out)
        return out

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise tarfile.ReadError("a layer stream cannot seek from its end")
        if pos < self._pos:
            raise tarfile.ReadError("the layer tar goes back to an earlier offset")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, CHUNK)):
                break
        return self._pos

    def drain(self) -> None:
        """Read (and hash) the rest: the diff_id covers the whole stream."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    # -- decompressing ---------------------------------------------------------------------
    def _pull(self) -> bytes:
        data = self._chunks()
        self.compressed += len(data)
        return data

    def _produced(self, block: bytes) -> bytes:
        if self._hash is not None:
            self._hash.update(block)
        self.size += len(block)
        self._limits.check_size(self.size, self._what)
        if self.kind != "none":
            self._limits.check_ratio(self.size, self.compressed, self._what)
        return block

    def _decoder(self, first: bytes):
        if self.kind == "gzip":
            return self._gunzip(first)
        if self.kind == "zstd":
            return self._unzstd(first)
        return self._plain(first)

    def _plain(self, data: bytes):
        while data:
            yield self._produced(data)
            data = self._pull()

    def _gunzip(self, data: bytes):
        """Every gzip member in turn (``cat a.gz b.gz`` is one gzip stream); zeros after
        the last member are ignored, anything else there is an error."""
        inflater = _inflate.decompressobj(31)
        while True:
            if not data:
                data = self._pull()
                if not data:
                    if tail := inflater.flush():          # output still held back
                        yield self._produced(tail)
                    if not inflater.eof:
                        raise EOFError("the gzip stream ends before its last member does")
                    return
            out = inflater.decompress(data, _OUT)
            data = inflater.unconsumed_tail
            if out:
                yield self._produced(out)
            if inflater.eof:
                rest = inflater.unused_data
                while len(rest) < 2 and (more := self._pull()):
                    rest += more
                if not rest.startswith(_GZIP_MAGIC):
                    self._only_zeros(rest)
                    return
                inflater, data = _inflate.decompressobj(31), rest

    def _only_zeros(self, rest: bytes) -> None:
        while rest:
            if rest.strip(b"\0"):
                raise zlib.error("data after the end of the gzip stream")
            rest = self._pull()

    def _unzstd(self, first: bytes):
        reader = zstandard.ZstdDecompressor().stream_reader(
            _ChunkFile(first, self._pull), read_size=CHUNK, read_across_frames=True)
        while block := reader.read(_OUT):
            yield self._produced(block)


class _ChunkFile:
    """``read(n)`` over chunks, for zstandard's stream reader (it may ask for any size)."""

    def __init__(self, first: bytes, pull: Callable[[], bytes]):
        self._buf, self._pull = first, pull

    def read(self, size: int = -1) -> bytes:
        if not self._buf:
            self._buf = self._pull()
        if size is None or size < 0 or size >= len(self._buf):
            out, self._buf = self._buf, b""
            return out
        out, self._buf = self._buf[:size], self._buf[size:]
        return out


def file_chunks(f) -> Chunks:
    """The chunks of an open binary file."""
    return lambda: f.read(CHUNK)


def open_tar(reader: LayerReader) -> tarfile.TarFile:
    """A tar reader over ``reader`` (members in order; data read as they are reached)."""
    return tarfile.TarFile(fileobj=reader, mode="r")

"""Layer compression: the write pipeline (tar -> diff_id hash -> compressor -> blob) and
decompressing readers chosen by magic bytes, not by what a media type or file name claims.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import queue
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

import zstandard

from minibox.errors import UserError
from minibox.store.oci import LAYER_MEDIA_TYPES

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZ2_MAGIC = b"BZh"

GZIP_LEVEL = 1
ZSTD_LEVEL = 3


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> int: ...


class LayerPipeline:
    """Hashes the uncompressed tar (diff_id) and feeds the (compressed) blob writer."""

    def __init__(self, blob: Sink, compression: str):
        if compression not in LAYER_MEDIA_TYPES:
            raise UserError(f"unknown layer compression {compression!r}",
                            hint="use one of: " + ", ".join(LAYER_MEDIA_TYPES))
        self.compression = compression
        self.media_type = LAYER_MEDIA_TYPES[compression]
        self._blob = blob
        self._diff = hashlib.sha256() if compression != "none" else None
        self._compressor = _compressor(compression)
        self.uncompressed_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.uncompressed_size += len(data)
        if self._compressor is None:
            return self._blob.write(data)
        self._diff.update(data)
        out = self._compressor.compress(data)
        if out:
            self._blob.write(out)
        return len(data)

    def finish(self) -> str | None:
        """Flush the compressor; the diff_id, or None when it equals the blob digest."""
        if self._compressor is None:
            return None
        self._blob.write(self._compressor.flush())
        return "sha256:" + self._diff.hexdigest()

    def close(self) -> None:
        """Release compressor threads (also after a failure)."""
        close = getattr(self._compressor, "close", None)
        if close is not None:
            close()


class BackgroundSink:
    """Runs ``sink.write`` on a worker thread, so hashing, compressing and writing the blob
    (all of which release the GIL) overlap with reading the tree.  Callers hand over each
    buffer: it must not be modified after ``write``.  Use as a context manager; leaving it
    waits for the worker and re-raises the worker's error, if any.

    The thread starts only once more than ``INLINE`` bytes were handed over: a small layer
    (most build blocks') is written in the caller's thread at the end, without paying for
    a thread's start and the hand-overs (~4 ms of CPU a block)."""

    INLINE = 1 << 20

    def __init__(self, sink: Sink, depth: int = 8):
        self._sink = sink
        self._depth = depth
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._held: list = []
        self._held_bytes = 0
        self._error: BaseException | None = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._sink.write(item)
                except BaseException as e:          # handed to the producer
                    self._error = e

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes <= self.INLINE:
                return len(data)
            self._queue = queue.Queue(maxsize=self._depth)
            self._thread = threading.Thread(target=self._run, name="layer-sink", daemon=True)
            self._thread.start()
            held, self._held = self._held, []
            for item in held:
                self._queue.put(item)
            return len(data)
        self._queue.put(data)
        return len(data)

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def close(self) -> None:
        held, self._held = self._held, []
        for item in held:                             # a small layer: written here
            self._sink.write(item)
        self._stop()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "BackgroundSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._held = []
            self._stop()


def _compressor(compression: str):
    if compression == "gzip":
        return ParallelGzip(GZIP_LEVEL)
    if compression == "zstd":
        # One worker per usable CPU (at least one, so always zstd's multi-threaded mode):
        # its output does not depend on the number of workers, so digests are the same on
        # every machine.
        workers = max(1, len(os.sched_getaffinity(0)))
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=workers).compressobj()
    return None


class ParallelGzip:
    """A gzip compressor that deflates 1 MiB blocks on all CPUs, the way pigz does.

    Each block is raw deflate primed with the previous 32 KiB (so the ratio matches one
    stream) and ends on a sync flush; the blocks concatenate into one ordinary gzip member
    that any gunzip reads.  The output depends only on the data and the block size, never on
    the number of threads, so digests are stable across machines.  Same interface as
    ``zlib.compressobj``: ``compress(data) -> bytes`` then ``flush() -> bytes``.
    """

    BLOCK = 1 << 20
    _WINDOW = 32 * 1024
    # fixed header: deflate, no flags, mtime 0, XFL 4 (fastest), OS 3 (unix)
    _HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03"
    _FINAL_EMPTY_BLOCK = b"\x03\x00"

    def __init__(self, level: int):
        self._level = level
        self._threads = len(os.sched_getaffinity(0)) or 1
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="gzip")
        self._pending = bytearray()
        self._dict = b""
        self._futures: deque[Future] = deque()
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending += data
        while len(self._pending) >= self.BLOCK:
            self._submit(bytes(self._pending[:self.BLOCK]))
            del self._pending[:self.BLOCK]
        return self._collect(wait_for=2 * self._threads)

    def flush(self) -> bytes:
        if self._pending:
            self._submit(bytes(self._pending))
            self._pending = bytearray()
        out = self._collect(wait_for=0)
        self.close()
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        return out + self._FINAL_EMPTY_BLOCK + trailer

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, block: bytes) -> None:
        self._futures.append(self._pool.submit(self._deflate, block, self._dict))
        self._dict = block[-self._WINDOW:]

    def _deflate(self, block: bytes, zdict: bytes) -> bytes:
        if zdict:
            c = zlib.compressobj(self._level, zlib.DEFLATED, -15, zdict=zdict)
        else:
            c = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        return c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)

    def _collect(self, wait_for: int) -> bytes:
        """Finished blocks in order; blocks while more than ``wait_for`` are in flight."""
        out = []
        if not self._started:
            out.append(self._HEADER)
            self._started = True
        while self._futures and (self._futures[0].done() or len(self._futures) > wait_for):
            out.append(self._futures.popleft().result())
        return b"".join(out)


def sniff(head: bytes) -> str:
    """``none``, ``gzip`` or ``zstd`` from the first bytes of a stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC) or head.startswith(_BZ2_MAGIC):
        raise UserError("xz and bzip2 compressed layers are not supported",
                        hint="recompress the archive with gzip or zstd, or leave it "
                             "uncompressed")
    return "none"


def open_decompressed(raw: BinaryIO) -> tuple[BinaryIO, str]:
    """Wrap ``raw`` (at its start) in a decompressing reader; also returns the kind.  A
    stream that can ``peek`` (a pipe, a buffered file) is sniffed without seeking."""
    if hasattr(raw, "peek"):
        head = raw.peek(8)[:8]
    else:
        head = raw.read(8)
        raw.seek(0)
    kind = sniff(head)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), kind
    if kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20,
                                                            read_across_frames=True)
        return reader, kind
    return raw, kind

"""Container logs: a compact framed text format, rotated by size, followed across rotation.

One record per line: ``<unix-ns> <s> <data>\\n`` where ``s`` is ``o``/``e`` (stdout/stderr, a
complete line: the newline is implied) or ``O``/``E`` (a partial line: no newline follows,
written at once so prompts show up while the container runs).  ``data`` is the raw bytes
without the newline.  The monitor writes ``container.log``; past ``max_size`` it is renamed
to ``container.log.1`` (older ones shift up to ``max_files - 1``) and a new file starts.
"""

from __future__ import annotations

import os
import time

LOG = "container.log"
DEFAULT_MAX_SIZE = 10 << 20
DEFAULT_MAX_FILES = 3


class LogWriter:
    """Used by the monitor: ``write(stream, data)`` with stream 'o' or 'e'."""

    def __init__(self, directory: str, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES):
        self.dir, self.max_size, self.max_files = directory, max_size, max_files
        self.path = os.path.join(directory, LOG)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        if not data:
            return
        stamp = b"%d " % time.time_ns()
        lines = data.split(b"\n")
        tail = lines.pop()
        out = [stamp + stream.encode() + b" " + ln + b"\n" for ln in lines]
        if tail:
            out.append(stamp + stream.upper().encode() + b" " + tail + b"\n")
        blob = b"".join(out)
        os.write(self.fd, blob)
        self.size += len(blob)
        if self.size >= self.max_size:
            self.rotate()

    def rotate(self) -> None:
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else f"{self.path}.{i - 1}"
            try:
                os.rename(src, f"{self.path}.{i}")
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = 0

    def close(self) -> None:
        os.close(self.fd)


def parse(line: bytes) -> tuple[int, str, bytes] | None:
    """(unix ns, 'stdout'|'stderr', bytes including the newline if the line was complete)."""
    try:
        ts, s, data = line.rstrip(b"\n").split(b" ", 2)
    except ValueError:
        try:
            ts, s = line.rstrip(b"\n").split(b" ", 1)
            data = b""
        except ValueError:
            return None
    kind = s.decode("ascii", "replace")
    stream = "stderr" if kind in ("e", "E") else "stdout"
    return int(ts), stream, data + (b"\n" if kind in ("o", "e") else b"")


def files(directory: str) -> list[str]:
    """The existing log files, oldest first."""
    base = os.path.join(directory, LOG)
    rotated = []
    i = 1
    while os.path.exists(f"{base}.{i}"):
        rotated.append(f"{base}.{i}")
        i += 1
    return list(reversed(rotated)) + ([base] if os.path.exists(base) else [])


def read_records(directory: str, tail: int | None = None, since_ns: int = 0):
    """All records (or the last ``tail``), as (ns, stream, data)."""
    out = []
    for path in files(directory):
        try:
            with open(path, "rb") as f:
                for line in f:
                    rec = parse(line)
                    if rec and rec[0] >= since_ns:
                        out.append(rec)
        except FileNotFoundError:
            continue
    if tail is not None and tail >= 0:
        out = out[-tail:] if tail else []
    return out


def follow(directory: str, finished, tail: int | None = None, since_ns: int = 0,
           wait=None, f=None):
    """Yield records as they come, following rotation, until ``finished()`` is true and
    every file is drained.  Starts with the existing ones (``tail``/``since`` apply).
    ``wait(seconds)`` sleeps between polls (it may return early, e.g. on a pidfd).  ``f``:
    the log, opened already (so output of a container removed meanwhile is not lost).

    Each line is yielded once, in order, however many rotations happen while it reads:
    after a file it goes on with the file written next (found by inode in the rotation
    chain), never straight to the newest, and it reads a rotated file to its end first."""
    path = os.path.join(directory, LOG)
    if f is None:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
    existing = read_records_upto(directory, f)
    if tail is not None and tail >= 0:
        existing = existing[-tail:] if tail else []
    for rec in existing:
        if rec[0] >= since_ns:
            yield rec
    try:
        yield from _follow_from(directory, f, finished, since_ns, wait or time.sleep)
    finally:
        f.close()


REFRESH_EVERY = 64      # records between looks for newer files (they are opened at once)


def _follow_from(directory: str, f, finished, since_ns: int, wait):
    """Records from ``f`` on.  Every file written after it is opened as soon as it is
    seen (``newer``), so a rotation that deletes it before we get there loses nothing."""
    buf, done, newer, count = b"", False, [], 0
    try:
        while True:
            chunk = f.read(65536)
            if not chunk:
                _open_newer(directory, f, newer)
                if newer:
                    chunk = f.read()    # written before the rename, after our last read
                    if not chunk:
                        f.close()
                        f = newer.pop(0)
                        continue
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    rec = parse(ln)
                    if rec and rec[0] >= since_ns:
                        yield rec
                    count += 1
                    if count % REFRESH_EVERY == 0:
                        _open_newer(directory, f, newer)
                continue
            if done:
                rec = parse(buf) if buf else None
                if rec and rec[0] >= since_ns:
                    yield rec
                return
            if finished():
                done = True             # the writer is done: one more pass drains it all
                continue
            wait(0.02)
    finally:
        f.close()
        for g in newer:
            g.close()


def read_records_upto(directory: str, f) -> list:
    """Records of the files rotated before ``f`` plus ``f`` up to its end now (f is left
    there, before a partial last line)."""
    out = []
    for g in _open_older(directory, f):
        with g:
            out.extend(r for r in map(parse, g) if r)
    data = f.read()
    complete, _, partial = data.rpartition(b"\n")
    if partial:
        f.seek(-len(partial), os.SEEK_CUR)
    out.extend(r for r in map(parse, complete.split(b"\n")) if r) if complete else None
    return out


def _chain(directory: str) -> list[tuple[str, int]]:
    """(path, inode) of the log files, oldest first."""
    out = []
    for p in files(directory):
        try:
            out.append((p, os.stat(p).st_ino))
        except FileNotFoundError:
            pass
    return out


def _position(chain: list[tuple[str, int]], f) -> int | None:
    """Where ``f`` is in the chain (None: rotated out of it, deleted)."""
    st = os.fstat(f.fileno())
    if st.st_nlink == 0:
        return None                    # its inode number may be a new file's already
    inos = [ino for _, ino in chain]
    return inos.index(st.st_ino) if st.st_ino in inos else None


def _open_chain_entry(path: str, ino: int):
    try:
        g = open(path, "rb")
    except FileNotFoundError:
        return None
    if os.fstat(g.fileno()).st_ino != ino:
        g.close()                      # rotated between the listing and the open
        return None
    return g


def _open_older(directory: str, f) -> list:
    """The files rotated before ``f``, opened, oldest first."""
    for _ in range(20):
        chain = _chain(directory)
        pos = _position(chain, f)
        older = chain[:pos] if pos is not None else []
        opened = [_open_chain_entry(p, ino) for p, ino in older]
        if all(g is not None for g in opened):
            return opened
        for g in opened:
            if g is not None:
                g.close()
    return []


def _open_newer(directory: str, f, newer: list) -> None:
    """Append to ``newer`` the log files written after the last of ``[f] + newer``."""
    for _ in range(20):
        chain = _chain(directory)
        last = newer[-1] if newer else f
        pos = _position(chain, last)
        if pos is None and os.fstat(last.fileno()).st_nlink:
            return                      # mid-rotation (or only linked elsewhere): later
        opened = [_open_chain_entry(p, ino) for p, ino in chain[0 if pos is None else pos + 1:]]
        if all(g is not None for g in opened):
            newer.extend(opened)
            return
        for g in opened:
            if g is not None:
                g.close()

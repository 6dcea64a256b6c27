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

from minibox.wire.runtime import DEFAULT_LOG_MAX_FILES as DEFAULT_MAX_FILES
from minibox.wire.runtime import DEFAULT_LOG_MAX_SIZE as DEFAULT_MAX_SIZE

LOG = "container.log"


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


CHUNK = 1 << 18         # bytes read at a time: many records per read, decode and HTTP chunk
_KINDS = b"oeOE"


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
    try:
        return int(ts), stream, data + (b"\n" if kind in ("o", "e") else b"")
    except ValueError:
        return None


# --- decoding many records at once ------------------------------------------------------
# Parsing record by record costs ~2 us a line in Python: a log of short lines then reads
# at a few hundred KB/s.  But the monitors stamp every line of one read of the container's
# pipe with the same time, so records come in runs that share their "<ns> <k> " header;
# a run is turned into output with a few C-speed bytes operations (find, count, replace).

def decode(block: bytes, since_ns: int = 0, stamp=None) -> list[tuple[str, bytes]]:
    """The output in ``block`` (whole records, each ending with its newline) as
    [(stream, data)], one item per change of stream.  ``stamp(ns)``: a prefix for each
    record (timestamps); records before ``since_ns`` are left out."""
    head = _header(block, 0)
    if head is not None and head[2] in b"oe" and block.startswith(
            head[0], block.index(b"\n") + 1):
        return _decode_runs(block, since_ns, stamp)
    return _decode_lines(block, since_ns, stamp)    # a line a write: no runs to group


def _decode_lines(block: bytes, since_ns: int, stamp) -> list[tuple[str, bytes]]:
    """Line by line, in list comprehensions: quick when all are complete lines of one
    stream (a program that writes each line at once), record by record otherwise."""
    recs = [ln.split(b" ", 2) for ln in block.split(b"\n")[:-1]]
    try:
        kinds = {k for _, k, _ in recs}
        stamps = [ns for ns, _, _ in recs]
        if len(kinds) == 1 and kinds <= {b"o", b"e"} and all(stamps) and \
                b"".join(stamps).isdigit() and not (
                since_ns and min(map(int, stamps)) < since_ns):
            if stamp:
                data = b"".join([stamp(int(ns)) + d + b"\n" for ns, _, d in recs])
            else:
                data = b"\n".join([d for _, _, d in recs]) + b"\n"
            return [("stderr" if kinds == {b"e"} else "stdout", data)]
    except ValueError:
        pass                                     # a line not as the monitors write it
    out: list = []
    for rec in map(parse, block.split(b"\n")[:-1]):
        if rec and rec[0] >= since_ns:
            add_run(out, rec[1], (stamp(rec[0]) if stamp else b"") + rec[2])
    return [(stream, b"".join(parts)) for stream, parts in out]


def _decode_runs(block: bytes, since_ns: int, stamp) -> list[tuple[str, bytes]]:
    """Run by run: Python work per run of records with the same header, not per line."""
    out: list[tuple[str, list[bytes]]] = []
    pos, n = 0, len(block)
    while pos < n:
        end = block.index(b"\n", pos) + 1
        head = _header(block, pos)
        if head is None:                        # not one the monitors write: the slow way
            rec = parse(block[pos:end])
            if rec and rec[0] >= since_ns:
                add_run(out, rec[1], (stamp(rec[0]) if stamp else b"") + rec[2])
            pos = end
            continue
        header, ns, kind = head
        if kind in b"oe":
            end = _run_end(block, end, header)
        if ns >= since_ns:
            body = block[pos + len(header):end]
            add_run(out, "stderr" if kind in b"eE" else "stdout",
                    _render(body, header, kind, stamp(ns) if stamp else b""))
        pos = end
    return [(stream, b"".join(parts)) for stream, parts in out]


def _header(block: bytes, pos: int) -> tuple[bytes, int, int] | None:
    """(b"<ns> <k> ", ns, k) of the record at ``pos``; None if it is not well formed."""
    sp = block.find(b" ", pos, pos + 32)
    if sp <= pos or block[sp + 2:sp + 3] != b" " or block[sp + 1] not in _KINDS:
        return None
    digits = block[pos:sp]
    if not digits.isdigit():
        return None
    return block[pos:sp + 3], int(digits), block[sp + 1]


def _run_end(block: bytes, end: int, header: bytes) -> int:
    """The end of the run of records beginning with ``header``, the first of which ends at
    ``end``.  It looks ahead in windows that double (so a long run costs a few steps and a
    one-line run one ``startswith``) and checks that every line in a window has the header:
    an equal header further on (same ns, same stream) is not taken for the same run."""
    sep = b"\n" + header
    window = 1024
    while block.startswith(header, end):
        last = block.rfind(sep, end - 1, end - 1 + window)
        stop = block.index(b"\n", last + 1) + 1
        if block.count(sep, end - 1, stop - 1) != block.count(b"\n", end - 1, stop - 1):
            stop = block.index(b"\n", end) + 1    # not all of them: one more record only
        end = stop
        window *= 2
    return end


def _render(body: bytes, header: bytes, kind: int, prefix: bytes) -> bytes:
    """Output of a run: ``body`` is the run without its first header."""
    if kind in b"OE":
        return prefix + body[:-1]               # a partial line: no newline of its own
    return prefix + body.replace(b"\n" + header, b"\n" + prefix)


def add_run(out: list, stream: str, data: bytes) -> None:
    """Append ``data`` to the last run of ``out`` if it is of ``stream``, else start one."""
    if out and out[-1][0] == stream:
        out[-1][1].append(data)
    else:
        out.append((stream, [data]))


def _records(block: bytes) -> list:
    return [r for r in map(parse, block.split(b"\n")[:-1]) if r]


# --- reading ----------------------------------------------------------------------------
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
    """All records (or the last ``tail`` of those since ``since_ns``), as (ns, stream, data)."""
    out = [r for block in read_blocks(directory) for r in _records(block) if r[0] >= since_ns]
    if tail is not None and tail >= 0:
        out = out[-tail:] if tail else []
    return out


def read_blocks(directory: str, tail: int | None = None):
    """The records of every log file (or of the last ``tail`` lines), oldest first, as blocks
    of whole lines (a last line still being written is completed with a newline)."""
    if tail == 0:
        return
    opened = _open_all(directory)
    try:
        first, offset, stops = 0, 0, [None] * len(opened)
        if tail is not None and tail >= 0:
            stops = [os.fstat(g.fileno()).st_size for g in opened]
            first, offset = _tail_start(opened, stops, tail, partial_counts=True)
        for i in range(first, len(opened)):
            opened[i].seek(offset if i == first else 0)
            yield from _blocks(opened[i], stops[i])
    finally:
        for g in opened:
            g.close()


def _open_all(directory: str) -> list:
    """The log files, opened, oldest first: the rotation chain of the current one."""
    try:
        f = open(os.path.join(directory, LOG), "rb")
    except FileNotFoundError:
        opened = []
        for p in files(directory):
            try:
                opened.append(open(p, "rb"))
            except FileNotFoundError:
                pass
        return opened
    return _open_older(directory, f) + [f]


def _blocks(f, stop: int | None = None):
    """Blocks of whole lines from ``f``'s position to its end (or offset ``stop``)."""
    rest = b""
    while True:
        size = CHUNK if stop is None else min(CHUNK, stop - f.tell())
        data = f.read(size) if size > 0 else b""
        if not data:
            break
        data = rest + data if rest else data
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield data[:cut]
    if rest:
        yield rest + b"\n"


def _tail_start(opened: list, sizes: list[int], n: int, partial_counts: bool):
    """(index, offset) in ``opened`` where the last ``n`` lines begin (each file read up to
    ``sizes``).  A last line without its newline counts as a line if ``partial_counts``
    (else it is being written: the lines before it are the last ones)."""
    need = n + 1                # the newline that ends the line before the first wanted one
    ends_complete = True
    for i in range(len(opened) - 1, -1, -1):
        if sizes[i]:
            opened[i].seek(sizes[i] - 1)
            ends_complete = opened[i].read(1) == b"\n"
            break
    if partial_counts and not ends_complete:
        need = n
    for i in range(len(opened) - 1, -1, -1):
        end = sizes[i]
        while end > 0:
            start = max(0, end - 65536)
            opened[i].seek(start)
            data = opened[i].read(end - start)
            have = data.count(b"\n")
            if have >= need:
                cut = len(data)
                for _ in range(need):
                    cut = data.rfind(b"\n", 0, cut)
                return i, start + cut + 1
            need -= have
            end = start
    return 0, 0


def follow(directory: str, finished, tail: int | None = None, since_ns: int = 0,
           wait=None, f=None):
    """``follow_blocks`` record by record, as (ns, stream, data)."""
    for block in follow_blocks(directory, finished, tail, wait, f):
        for rec in _records(block):
            if rec[0] >= since_ns:
                yield rec


def follow_blocks(directory: str, finished, tail: int | None = None, wait=None, f=None):
    """Yield blocks of whole records as they come, following rotation, until ``finished()``
    is true and every file is drained.  Starts with the existing ones (the last ``tail``
    lines if given).  ``wait(seconds)`` sleeps between polls (it may return early, e.g. on
    a pidfd).  ``f``: the log, opened already (so output of a container removed meanwhile is
    not lost).  A block is whatever one read brought: never held back to fill it.

    Each line is yielded once, in order, however many rotations happen while it reads:
    after a file it goes on with the file written next (found by inode in the rotation
    chain), never straight to the newest, and it reads a rotated file to its end first."""
    path = os.path.join(directory, LOG)
    if f is None:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
    queue = _open_older(directory, f) + [f]
    if tail is not None and tail >= 0:
        sizes = [os.fstat(g.fileno()).st_size for g in queue]
        first, offset = _tail_start(queue, sizes, tail, partial_counts=False)
        for g in queue[:first]:
            g.close()
        del queue[:first]
        queue[0].seek(offset)
    yield from _follow_from(directory, queue, finished, wait or time.sleep)


def _follow_from(directory: str, queue: list, finished, wait):
    """Blocks from ``queue[0]`` on, then the files after it.  Every file written after the
    last queued one is opened as soon as it is seen (at each read), so a rotation that
    deletes it before we get there loses nothing."""
    f, newer = queue[0], queue[1:]
    rest, done = b"", False
    try:
        while True:
            chunk = f.read(CHUNK)
            _open_newer(directory, f, newer)
            if not chunk and newer:
                chunk = f.read()        # written before the rename, after our last read
                if not chunk:
                    if rest:            # a rotated file ends with whole records: never here
                        yield rest + b"\n"
                        rest = b""
                    f.close()
                    f = newer.pop(0)
                    continue
            if chunk:
                data = rest + chunk if rest else chunk
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield data[:cut]
                continue
            if done:
                if rest:
                    yield rest + b"\n"
                return
            if finished():
                done = True             # the writer is done: one more pass drains it all
                continue
            wait(0.02)
    finally:
        f.close()
        for g in newer:
            g.close()


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

"""``compose logs``: the services' output, each line prefixed with its container's name
(coloured on a terminal).  Without follow: every container's log so far, merged in time
order, then exit.  With follow: as it comes, until every container has exited (or ^C)."""

from __future__ import annotations

import sys
import threading

from minibox.compose.daemon import Daemon

COLOURS = ("36", "33", "32", "35", "34", "31")     # cyan yellow green magenta blue red
STAMP_LEN = len("2026-01-01T00:00:00.000000000Z ")


def prefixes(names: list[str], colour: bool) -> dict[str, bytes]:
    width = max((len(n) for n in names), default=0)
    out = {}
    for i, n in enumerate(names):
        text = f"{n:<{width}} | "
        out[n] = (f"\x1b[{COLOURS[i % len(COLOURS)]}m{text}\x1b[0m" if colour else text).encode()
    return out


def _lines(resp):
    """(stream, stamped line) from a multiplexed log response, line by line."""
    from minibox.cli.streams import EXIT, frames
    partial = {1: b"", 2: b""}
    for stream, data in frames(resp):
        if stream == EXIT:
            continue
        buf = partial.get(stream, b"") + data
        *whole, partial[stream] = buf.split(b"\n")
        for line in whole:
            yield stream, line + b"\n"
    for stream, rest in partial.items():
        if rest:
            yield stream, rest + b"\n"


def show(d: Daemon, names: list[str], follow: bool, timestamps: bool = False,
         out=None, err=None) -> None:
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    from minibox.cli.output import colour_enabled
    pre = prefixes(names, colour_enabled())
    if not follow:
        merged = []
        for n in names:
            with d.logs(n, follow=False) as r:
                merged += [(line[:STAMP_LEN], n, s, line) for s, line in _lines(r)]
        merged.sort(key=lambda x: x[0])                 # fixed-width UTC stamps
        for _, n, s, line in merged:
            (err if s == 2 else out).write(pre[n] + (line if timestamps else line[STAMP_LEN:]))
        out.flush()
        err.flush()
        return
    lock = threading.Lock()

    def one(n: str) -> None:
        with d.logs(n, follow=True) as r:
            for s, line in _lines(r):
                with lock:
                    target = err if s == 2 else out
                    target.write(pre[n] + (line if timestamps else line[STAMP_LEN:]))
                    target.flush()

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)          # a join with a timeout lets ^C through

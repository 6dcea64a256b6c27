"""Byte streams the API sends: logs (plain or multiplexed), follow-until-exit, exec, TTYs.

Multiplexed frames are Docker's: an 8-byte header (stream, 0, 0, 0, big-endian length)
then the payload; stream 1 = stdout, 2 = stderr, and (our addition) 3 = a final JSON
record ``{"exit_code": n, "oom_killed": b}`` when the stream ends because the container or
exec process ended.
"""

from __future__ import annotations

import functools
import json
import os
import select
import struct
import subprocess
import time
from datetime import datetime, timezone

from minibox import kernel
from minibox.errors import MiniBoxError
from minibox.runtime.io import logs
from minibox.runtime.query import wait_exited
from minibox.runtime.state import StateStore, alive, read_json
from minibox.wire.runtime import StartResult

STDOUT, STDERR, EXIT = 1, 2, 3


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def _stamp(ns: int) -> bytes:
    sec, frac = divmod(ns, 1_000_000_000)
    return _second(sec) + b"%09dZ " % frac


@functools.lru_cache(maxsize=256)
def _second(sec: int) -> bytes:
    """``YYYY-MM-DDTHH:MM:SS.`` of a unix second (a log's lines share few of them)."""
    return datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.").encode()


class ExitWatch:
    """finished()/wait() for logs.follow: done once the monitor recorded the exit."""

    def __init__(self, store: StateStore, cid: str):
        self.store, self.cid = store, cid
        rec = store.load(cid)
        st = rec.effective() if rec else {"status": "removed"}
        self.dir, self.run = (rec.dir if rec else None), st.get("run")
        self.fd = None
        if st["status"] == "running" and alive(st.get("pid"), st.get("pid_start")):
            try:
                self.fd = kernel.pidfd_open(st["pid"])
            except MiniBoxError:
                self.fd = None
        self.running = st["status"] == "running"

    def finished(self) -> bool:
        if not self.running:
            return True
        if self.fd is not None and not select.select([self.fd], [], [], 0)[0]:
            return False
        if self.dir is None or not self.dir.exists():
            return True
        ex = read_json(self.dir / "exit.json")
        if ex and ex.get("run") == self.run:
            return True
        rec = self.store.load(self.cid)
        return rec is None or rec.effective()["status"] != "running"

    def wait(self, seconds: float) -> None:
        if self.fd is not None and not select.select([self.fd], [], [], seconds)[0]:
            return
        time.sleep(0.001)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def open_log(store: StateStore, cid: str):
    """Open (creating) the container's log for reading, before it starts: a foreground run
    then sees all of the output even if the container is removed at once (--rm)."""
    path = store.dir(cid) / logs.LOG
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
    return os.fdopen(fd, "rb")


def open_attach_log(store: StateStore, st: StartResult):
    """The log of a container started by ``run`` with attach, through the link the worker
    made (then removed, so nothing is left behind); the container's own log otherwise."""
    link = st.log_link
    if link and os.path.dirname(link) == str(store.attach):
        try:
            fd = os.open(link, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        if fd >= 0:
            return os.fdopen(fd, "rb")
    return open_log(store, st.id)


def log_stream(store: StateStore, cid: str, *, follow: bool = False, tail: int | None = None,
               since_ns: int = 0, timestamps: bool = False, mux: bool = False,
               exit_trailer: bool = False, f=None, watch=None):
    """The container's output, many records per item (one item per HTTP chunk: a chunk a
    record made a log of short lines crawl), plain or as frames (one per change of stream)."""
    d = str(store.dir(cid))
    stamp = _stamp if timestamps else None
    if not follow:
        if tail is not None and tail >= 0 and since_ns:   # the last N of those since
            yield from _records_out(logs.read_records(d, tail, since_ns), stamp, mux)
            return
        yield from _blocks_out(logs.read_blocks(d, tail), since_ns, stamp, mux)
        return
    watch = watch or ExitWatch(store, cid)
    try:
        blocks = logs.follow_blocks(d, watch.finished, tail, watch.wait, f)
        yield from _blocks_out(blocks, since_ns, stamp, mux)
    finally:
        watch.close()
    if exit_trailer:
        st = wait_exited(store, [cid], 10.0).get(cid, {})
        yield frame(EXIT, json.dumps({"exit_code": st.get("exit_code"),
                                      "oom_killed": st.get("oom_killed", False)}).encode())


def _blocks_out(blocks, since_ns: int, stamp, mux: bool):
    """One output item per block of records (empty ones are not sent)."""
    for block in blocks:
        out = _join(logs.decode(block, since_ns, stamp), mux)
        if out:
            yield out


def _records_out(records: list, stamp, mux: bool, batch: int = 4096):
    for i in range(0, len(records), batch):
        runs: list = []
        for ns, stream, data in records[i:i + batch]:
            logs.add_run(runs, stream, (stamp(ns) if stamp else b"") + data)
        out = _join([(st, b"".join(parts)) for st, parts in runs], mux)
        if out:
            yield out


def _join(runs: list[tuple[str, bytes]], mux: bool) -> bytes:
    if mux:
        return b"".join(frame(STDERR if stream == "stderr" else STDOUT, data)
                        for stream, data in runs if data)
    return b"".join(data for _, data in runs)


def exec_stream(proc: subprocess.Popen):
    """Multiplexed output of a running exec helper, then its exit code."""
    fds = {proc.stdout.fileno(): STDOUT, proc.stderr.fileno(): STDERR}
    try:
        while fds:
            ready, _, _ = select.select(list(fds), [], [], 1.0)
            for fd in ready:
                data = os.read(fd, 65536)
                if data:
                    yield frame(fds[fd], data)
                else:
                    del fds[fd]
        code = proc.wait()
    finally:
        _kill_if_running(proc)
    yield _exit_frame(code)


def pty_stream(master: int, proc: subprocess.Popen):
    """Output of an exec running on a PTY we hold the master of, then its exit code."""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                yield frame(STDOUT, data)
            elif proc.poll() is not None:
                break
        code = proc.wait()
    finally:
        _kill_if_running(proc)
    yield _exit_frame(code)


def _kill_if_running(proc: subprocess.Popen) -> None:
    """The client went away mid-stream: the exec must not outlive its session."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _exit_frame(code: int) -> bytes:
    return frame(EXIT, json.dumps({"exit_code": code}).encode())

"""Logs of many short lines: ``logs -f`` keeps up with a fast writer whose log rotates every
few milliseconds, ``logs`` reads everything back, and batching never holds a line back."""

from __future__ import annotations

import random
import re
import subprocess
import threading

from tests.runtime.conftest import run_ok
from tests.runtime.farm import PY

LINES = 200000
WAIT_GO = "while [ ! -e /ctl/go ]; do usleep 10000; done"


class Follower:
    """``minibox logs -f`` in the background; its stdout lines collected as they come."""

    def __init__(self, farm, *args):
        self.proc = subprocess.Popen([PY, "-m", "minibox.cli.main", "logs", "-f", *args],
                                     env=farm.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines: list[bytes] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, line: bytes, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: line in self.lines, timeout)

    def finish(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
            self.reader.join(10)
            return rc
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def test_follow_keeps_up_with_a_fast_writer(farm, tmp_path):
    """200k lines from seq as fast as it goes, 64k log files (3 kept): a follower started
    before the writing gets every line once, in order, and ends when the container does."""
    cid = run_ok(farm, "run", "-d", "--log-opt", "max-size=64k", "-v", f"{tmp_path}:/ctl",
                 "busybox", "sh", "-c", f"echo ready; {WAIT_GO}; seq 1 {LINES}").strip()
    follower = Follower(farm, cid)
    assert follower.wait_for(b"ready\n", 20), "the follower saw nothing"
    (tmp_path / "go").touch()
    rc = follower.finish(120)
    assert rc == 0, follower.proc.stderr.read()
    lines = [x.decode().rstrip("\n") for x in follower.lines]
    assert lines[0] == "ready"
    assert lines[1:] == [str(i) for i in range(1, LINES + 1)], (len(lines), _first_gap(lines[1:]))
    names = set((farm.root / "containers" / cid).iterdir())
    assert farm.root / "containers" / cid / "container.log.2" in names     # it did rotate
    # the 3 newest files: a suffix, in order (its first line may be the end of one that
    # was split between two reads of the pipe, the rest of it in a deleted file)
    kept = run_ok(farm, "logs", cid).split()[1:]
    assert 0 < len(kept) < LINES and kept == [str(i) for i in range(LINES - len(kept) + 1,
                                                                       LINES + 1)]
    run_ok(farm, "rm", cid)


def test_logs_of_a_finished_container(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sh", "-c",
                 f"seq 1 3 >&2; usleep 200000; seq 1 {LINES}; echo out; "
                 "printf 'no newline'").strip()
    _wait(farm, cid)
    r = farm.cli("logs", cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("".join(f"{i}\n" for i in range(1, LINES + 1)) +
                        "out\nno newline").encode()
    assert r.stderr == b"1\n2\n3\n"
    assert run_ok(farm, "logs", "-n", "2", cid) == "out\nno newline"
    assert farm.cli("logs", "-n", "0", cid).stdout == b""
    stamped = farm.cli("logs", "-t", cid).stdout     # a stamp per record: a line split
    stamp = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")  # in two has two
    assert all(stamp.match(ln) for ln in stamped.split(b"\n")), stamped[:200]
    assert stamp.sub(b"", stamped) == r.stdout
    assert run_ok(farm, "logs", "--since", "9999999999", cid) == ""
    follow = farm.cli("logs", "-f", "-n", "3", cid)    # a finished one: ends at once
    assert follow.returncode == 0 and follow.stdout == f"{LINES}\nout\nno newline".encode()
    run_ok(farm, "rm", cid)


def test_follow_sends_a_line_at_once(farm, tmp_path):
    """Batching never waits for more: a line shows up while the writer is blocked."""
    cid = run_ok(farm, "run", "-d", "-v", f"{tmp_path}:/ctl", "busybox", "sh", "-c",
                 f"echo first; {WAIT_GO}; echo second").strip()
    follower = Follower(farm, cid)
    try:
        assert follower.wait_for(b"first\n", 20), follower.lines
        assert follower.lines == [b"first\n"]
    finally:
        (tmp_path / "go").touch()
    assert follower.finish(30) == 0
    assert follower.lines == [b"first\n", b"second\n"]
    run_ok(farm, "rm", cid)


def test_decode_matches_record_by_record():
    """The batch decoder gives what parsing each record gives, on odd logs too (runs with
    the same header, partial lines, both streams, lines not as the monitors write them)."""
    from minibox.runtime.io import logs, streams
    rnd = random.Random(7)
    for _ in range(600):
        block = _random_log(rnd)
        since = rnd.choice([0, 0, 1700000000000000500])
        stamp = rnd.choice([None, streams._stamp])
        want: list = []
        for rec in map(logs.parse, block.split(b"\n")[:-1]):
            if rec and rec[0] >= since:
                logs.add_run(want, rec[1], (stamp(rec[0]) if stamp else b"") + rec[2])
        want = [(s, b"".join(parts)) for s, parts in want]
        assert logs.decode(block, since, stamp) == want, block


def _random_log(rnd) -> bytes:
    out, ns = [], 1700000000000000000
    for _ in range(rnd.randint(0, 40)):
        ns += rnd.choice([0, 0, 1, 1000, 10**9])
        kind = rnd.choice("ooooeeOEx")
        for _ in range(rnd.choice([1, 1, 2, 5, 200])):
            data = bytes(rnd.choice(b"ab o e O\t1 23") for _ in range(rnd.randint(0, 6)))
            if kind == "x":
                out.append(rnd.choice([b"garbage", b"12 o", b"", b"1 2 3", b" o x"]))
            else:
                out.append(b"%d %s %s" % (ns, kind.encode(), data))
    return b"".join(ln + b"\n" for ln in out)


def _wait(farm, cid: str) -> None:
    with farm.http(70) as c:
        r = c.post(f"/containers/{cid}/wait", params={"timeout": 60})
    assert r.status_code == 200, r.text


def _first_gap(numbers: list[str]):
    for i, n in enumerate(numbers, 1):
        if n != str(i):
            return i, n
    return None

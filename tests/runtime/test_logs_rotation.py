"""logs -f follows the container log across many rotations: every line once, in order."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from tests.runtime.conftest import run_ok
from tests.runtime.farm import PY

LINES = 15000
SCRIPT = ("echo ready; while [ ! -e /ctl/go ]; do usleep 10000; done; i=0; "
          f"while [ $i -lt {LINES} ]; do j=0; "
          "while [ $j -lt 100 ]; do i=$((i+1)); echo $i; j=$((j+1)); done; usleep 4000; done")


def test_follow_across_rotation(farm, tmp_path):
    cid = run_ok(farm, "run", "-d", "--log-opt", "max-size=16k", "-v", f"{tmp_path}:/ctl",
                 "busybox", "sh", "-c", SCRIPT).strip()
    follower = subprocess.Popen([PY, "-m", "minibox.cli.main", "logs", "-f", cid],
                                env=farm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got: list[bytes] = []
    ready = threading.Event()

    def read():
        for line in follower.stdout:
            got.append(line)
            ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(20), "the follower saw nothing"
        (tmp_path / "go").touch()                 # start writing only once it follows
        rc = follower.wait(60)                    # it ends by itself when the container does
        reader.join(5)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert rc == 0, follower.stderr.read()
    lines = [x.decode().rstrip("\n") for x in got]
    assert lines[0] == "ready"
    numbers = lines[1:]
    assert len(numbers) == LINES and numbers == [str(i) for i in range(1, LINES + 1)], (
        len(numbers), _first_gap(numbers))
    rotated = sorted(os.listdir(farm.root / "containers" / cid))
    assert "container.log.2" in rotated and "container.log.3" not in rotated
    kept = run_ok(farm, "logs", cid).split()      # only the 3 newest files are kept
    assert 0 < len(kept) < LINES and kept[-1] == str(LINES)
    run_ok(farm, "rm", cid)


def _first_gap(numbers: list[str]):
    for i, n in enumerate(numbers, 1):
        if n != str(i):
            return i, n
    return None


def test_bad_log_opts(farm):
    before = set(farm.container_ids())
    for opt, msg in (("max-size=abc", b"invalid --log-opt max-size 'abc'"),
                     ("max-size=10", b"too small"), ("max-file=0", b"out of range"),
                     ("color=red", b"unknown --log-opt 'color'"), ("max-size", b"KEY=VALUE")):
        r = farm.cli("run", "--rm", "--log-opt", opt, "busybox", "true")
        assert r.returncode != 0 and msg in r.stderr and b"Traceback" not in r.stderr, r.stderr
    time.sleep(0.1)
    assert set(farm.container_ids()) == before


"""The build view on a terminal: a running block's elapsed time ticks between events."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

SCRIPT = """
import time
from minibox.cli.progress import make_renderer
r = make_renderer("auto")
r.event({"type": "job_start", "tag": "app:latest", "blocks": 1})
r.event({"type": "wave_start", "wave": 1, "blocks": ["slow"]})
r.event({"type": "block_start", "block": "slow", "worker": "w1"})
time.sleep(2.5)                               # no events meanwhile
r.event({"type": "block_done", "block": "slow", "duration": 2.5})
r.event({"type": "job_done", "tag": "app:latest", "digest": "sha256:" + "0" * 64,
         "duration": 2.6, "cached": 0, "built": 1})
r.close()
"""


def test_running_block_time_ticks_on_a_terminal():
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="100", LINES="30")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=slave, stdout=slave,
                            stderr=slave, env=env)
    os.close(slave)
    seen = b""
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:             # EIO: the child exited
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(30) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    ticks = [float(s) for s in re.findall(r"running\s+slow\s+(\d+\.\d)s", text)]
    # seconds shown while no event came: several distinct, rising values
    assert len(set(ticks)) >= 3, text
    assert ticks == sorted(ticks), ticks
    assert "Successfully built app:latest" in text

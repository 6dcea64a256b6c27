"""Restart recovery: containers outlive SIGKILL of the runtime worker and of miniboxd."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.runtime.conftest import run_ok


def test_containers_survive_worker_and_api_sigkill(farm):
    keep = run_ok(farm, "run", "-d", "--name", "rec-keep", "busybox", "sleep", "60").strip()
    ends = run_ok(farm, "run", "-d", "--name", "rec-ends", "busybox", "sh", "-c",
                  "echo start; sleep 1.5; echo done; exit 4").strip()
    farm.kill_worker()
    api = farm.procs.pop("api")
    os.killpg(api.pid, signal.SIGKILL)
    api.wait()
    time.sleep(2.5)                                    # rec-ends exits meanwhile
    farm.start_worker()
    farm.start_api()
    rows = {r["name"]: r for r in json.loads(run_ok(farm, "ps", "-a", "--json"))}
    assert rows["rec-keep"]["status"] == "running"
    assert rows["rec-ends"]["status"] == "exited" and rows["rec-ends"]["exit_code"] == 4
    assert run_ok(farm, "logs", "rec-ends").split() == ["start", "done"]
    state = json.loads((farm.root / "containers" / ends / "state.json").read_text())
    assert state["status"] == "exited" and state["exit_code"] == 4    # persisted on restart
    run_ok(farm, "stop", "-t", "1", keep)
    assert json.loads(run_ok(farm, "inspect", keep))[0]["state"]["exit_code"] == 143
    run_ok(farm, "rm", keep, ends)

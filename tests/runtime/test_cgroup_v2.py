"""The cgroup v2 path, on this v1-hybrid host's unified hierarchy (/sys/fs/cgroup/unified:
cgroup2 without controllers, which are all bound to v1 here).  It checks the mechanics a v2
host relies on: the container's cgroup is made under the parent, the init is attached
before it runs, counters are read, limits whose controller is missing are warnings (not a
silent no-op and not a failed start), and the cgroup goes when the container exits."""

from __future__ import annotations

import os
import signal
import time

import pytest

from minibox.runtime.limits import cgroups
from minibox.runtime.query import wait_exited
from minibox.runtime.limits.stats import Sampler

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def v2(monkeypatch):
    if not os.path.exists(f"{UNIFIED}/cgroup.procs"):
        pytest.skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified")
    monkeypatch.setattr(cgroups, "ROOT", UNIFIED)
    monkeypatch.setattr(cgroups, "is_v2", lambda: True)
    monkeypatch.setattr(cgroups, "_OWN_PROCS", [])


def test_container_lives_in_its_v2_cgroup(v2, direct_runtime):
    rt = direct_runtime
    st = rt.run({"image": "busybox", "command": ["sleep", "30"], "memory": "64m"})
    cg = cgroups.Cgroup.from_dict(st["cgroup"])
    assert cg.version == 2 and cg.dirs == [f"{UNIFIED}/{cgroups.PARENT}/{st['id']}"]
    procs = open(f"{cg.dirs[0]}/cgroup.procs").read().split()
    assert str(st["pid"]) in procs
    assert any("memory limit not enforced" in w for w in st["warnings"]), st["warnings"]
    assert any("pids limit not enforced" in w for w in st["warnings"]), st["warnings"]
    time.sleep(0.2)
    sample = Sampler().sample(rt.store.load(st["id"]).effective())
    assert sample["cpu_usage_ns"] > 0            # cpu.stat exists without the cpu controller
    rt.kill(st["id"], signal.SIGKILL)
    res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
    assert res["exit_code"] == 137 and res["oom_killed"] is False
    for _ in range(50):
        if not os.path.exists(cg.dirs[0]):
            break
        time.sleep(0.05)
    assert not os.path.exists(cg.dirs[0])

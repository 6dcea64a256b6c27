"""cgroup v1 cpuset: a container's cgroup is joinable even when another start made the
parent a moment ago and has not yet filled its cpuset (an empty cpuset refuses every task
with ENOSPC).  The CI run that failed on this started compose services in parallel."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from minibox.runtime.limits import cgroups
from minibox.runtime.spec import ContainerSpec

CPUSET = "/sys/fs/cgroup/cpuset"


@pytest.fixture
def fresh_parent(monkeypatch):
    if cgroups.is_v2() or not os.path.exists(f"{CPUSET}/cpuset.cpus"):
        pytest.skip("needs a cgroup v1 cpuset hierarchy")
    name = f"minibox-test-cpuset-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(cgroups, "PARENT", name)
    yield name
    for base in {b for _, b in cgroups._v1_hierarchies()}:
        cgroups.remove([f"{base}/{name}"])


def test_child_of_a_parent_with_an_empty_cpuset_can_be_joined(fresh_parent):
    os.mkdir(f"{CPUSET}/{fresh_parent}")           # the racing start's half-made parent
    assert open(f"{CPUSET}/{fresh_parent}/cpuset.cpus").read().strip() == ""
    cg = cgroups.create(uuid.uuid4().hex[:12], ContainerSpec(image="x", command=["true"]))
    child = cg.path("cpuset")
    try:
        assert open(f"{child}/cpuset.cpus").read().strip()
        assert open(f"{child}/cpuset.mems").read().strip()
        sleeper = subprocess.Popen(["sleep", "30"])
        try:
            with open(f"{child}/cgroup.procs", "w") as f:   # ENOSPC before the fix
                f.write(str(sleeper.pid))
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        assert cgroups.remove(cg.dirs) == []

"""Session fixtures: one real farm (redis, runtime worker, API) and the test images.

Cleanup runs at the end of the session whatever happened: every container process of the
farm's data root, its cgroups and the farm's processes are killed or removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import netkit
from tests.runtime.farm import Farm
from tests.runtime.images import import_busybox

HERE = Path(__file__).resolve().parent

if os.geteuid() != 0:
    pytest.skip("the runtime tests need root", allow_module_level=True)


@pytest.fixture(scope="session")
def farm():
    f = Farm()
    try:
        import_busybox(f.root, "busybox")
        import_busybox(f.root, "bb-app", User="app", WorkingDir="/home/app",
                       Env=["PATH=/usr/bin:/bin", "GREETING=hello"])
        import_busybox(f.root, "bb-health", Labels={
            "mini.healthcheck.cmd": '["/bin/sh", "-c", "test -e /tmp/ok"]',
            "mini.healthcheck.interval": "0.3s"})
        f.start()
        yield f
    finally:
        f.cleanup()


@pytest.fixture(scope="session")
def probe(farm) -> str:
    """A static probe binary (tests/runtime/probe.c) in a host dir to bind-mount read-only."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the isolation probe")
    out = farm.root / "probe-bin"
    out.mkdir()
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out / "probe"), str(HERE / "probe.c")],
                   check=True)
    return str(out)


@pytest.fixture(params=[True, False], ids=["python-monitor", "minimon"])
def direct_runtime(request, tmp_path_factory, monkeypatch):
    """The runtime layer as the worker calls it, in this process, on a private data root,
    with the Python monitor or the compiled one.  Yields the Runtime; every container it
    made, its cgroups and the data root are removed afterwards."""
    from minibox.runtime.limits import cgroups
    from minibox.runtime.start import minimon
    from minibox.runtime.service import Runtime
    from tests.runtime.farm import remove_cgroups
    root = tmp_path_factory.mktemp("direct")
    monkeypatch.setattr(minimon, "_cache", {str(root): None} if request.param else {})
    parent = f"minibox-test-{os.getpid()}-{root.name}"   # unique across concurrent runs
    monkeypatch.setattr(cgroups, "PARENT", parent)
    import_busybox(root, "busybox")
    env = netkit.net_env(root.name)          # its own bridge, subnet and chains
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rt = Runtime(root)
    try:
        yield rt
    finally:
        os.chdir("/")
        for cid in rt.store.ids():
            rt.remove(cid, force=True)
        remove_cgroups(parent)
        netkit.cleanup(env, str(root))
        shutil.rmtree(root, ignore_errors=True)


def run_ok(farm, *args, timeout=60):
    r = farm.cli(*args, timeout=timeout)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout.decode()

"""End to end ``minibox run --rm --network none busybox true`` vs podman (runc) on the same
rootfs, the same with the default bridge network (veth, address, route: what a container's
network costs), plus the daemon-side create -> exit of ``true`` (with cgroups) vs ``crun run``.
Port maps against podman: bench/bench_ports.py.

    sudo .venv/bin/python bench/bench_run.py [-n 20]

Prints medians side by side and the ratios.  podman runs with
``--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --runtime runc`` (this host has no
CAP_SYS_RESOURCE) from the same busybox tarball, imported as localhost/mbx-busybox.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _farm import median, start_farm

BUSYBOX = "/var/cache/minibox-dev/busybox.tar.gz"
PODMAN = ["podman", "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit",
          "nproc=1024:1024", "--runtime", "runc"]


def timed(argv, env=None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    dt = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {r.stderr.decode()[-400:]}")
    return dt


def median_of(argv, n: int, env=None) -> float:
    """One warm-up run, then the median of ``n``."""
    timed(argv, env)
    return median([timed(argv, env) for _ in range(n)])


def bench_cli(farm, n: int, *net_args: str) -> float:
    """The CLI as users run it: with Python's bytecode cache (an installed package has it;
    the warm-up run writes it for this checkout even if the caller's environment sets
    PYTHONDONTWRITEBYTECODE=1, which would make every run compile the CLI's modules again,
    ~25 ms here)."""
    argv = [sys.executable, "-m", "minibox.cli.main", "run", "--rm",
            *(net_args or ("--network", "none")), "busybox", "true"]
    env = dict(farm.env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return median_of(argv, n, env)


def bench_podman(n: int, *net_args: str) -> float | None:
    if not shutil.which("podman"):
        return None
    subprocess.run(["podman", "import", BUSYBOX, "localhost/mbx-busybox:latest"],
                   capture_output=True, check=True)
    return median_of([*PODMAN, *(net_args or ("--network", "none")), "localhost/mbx-busybox",
                      "true"], n)


def bench_api(farm, n: int) -> float:
    """Daemon side: POST /containers?attach=1 until the exit frame (create, cgroup, start,
    exit, exit code recorded), through HTTP."""
    body = {"image": "busybox", "command": ["true"], "autoremove": True, "network": "none"}
    out = []
    with farm.http(30) as c:
        for i in range(n + 2):
            t = time.perf_counter()
            with c.stream("POST", "/containers", params={"attach": True}, json=body) as r:
                data = r.read()
            dt = (time.perf_counter() - t) * 1000
            assert r.status_code == 200 and data.endswith(b'"oom_killed": false}'), data
            if i >= 2:
                out.append(dt)
    return median(out)


def bench_runtime(farm, n: int) -> float:
    """The runtime layer alone, in this process (what the worker does per container)."""
    from minibox.runtime.limits import cgroups
    from minibox.runtime.query import wait_exited
    from minibox.runtime.service import Runtime
    root = farm.root
    cgroups.PARENT = farm.env["MINIBOX_CGROUP_PARENT"]   # the farm's, removed by its cleanup
    rt = Runtime(root)
    out = []
    for i in range(n + 2):
        t = time.perf_counter()
        st = rt.run({"image": "busybox", "command": ["true"], "autoremove": True,
                     "network": "none"})
        res = wait_exited(rt.store, [st["id"]], 10)[st["id"]]
        dt = (time.perf_counter() - t) * 1000
        assert res.get("exit_code") == 0, res
        if i >= 2:
            out.append(dt)
    return median(out)


def bench_crun(n: int) -> float | None:
    """crun create->exit of `true` with cgroups on an unpacked busybox bundle, run inside
    `unshare -m` with the cgroup2 mount hidden (crun 1.8 refuses this hybrid layout)."""
    if not shutil.which("crun"):
        return None
    bundle = tempfile.mkdtemp(prefix="mbx-crun-", dir="/var/tmp")
    try:
        os.mkdir(f"{bundle}/rootfs")
        subprocess.run(["tar", "-xzf", BUSYBOX, "-C", f"{bundle}/rootfs"], check=True)
        subprocess.run(["crun", "spec"], cwd=bundle, check=True)
        with open(f"{bundle}/config.json") as f:
            spec = json.load(f)
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        with open(f"{bundle}/config.json", "w") as f:
            json.dump(spec, f)
        script = ("umount /sys/fs/cgroup/unified 2>/dev/null; for i in $(seq %d); do "
                  "s=$(date +%%s%%N); crun run -b %s mbx-crun-$i >/dev/null || exit 1; "
                  "e=$(date +%%s%%N); echo $(( (e - s) / 1000 )); done") % (n + 2, bundle)
        r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True)
        if r.returncode != 0:
            return None
        return median([int(x) / 1000 for x in r.stdout.split()[2:]])
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    n = ap.parse_args().n
    farm = start_farm()
    try:
        cli = bench_cli(farm, n)
        bridge = bench_cli(farm, n, "--network", "bridge")
        api = bench_api(farm, n)
        rt = bench_runtime(farm, n)
    finally:
        farm.cleanup()
    pod = bench_podman(n)
    crun = bench_crun(n)
    print(f"run --rm --network none busybox true, median of {n}:")
    print(f"  minibox CLI end to end      {cli:8.1f} ms")
    print(f"  the same, --network bridge  {bridge:8.1f} ms   (the network: +{bridge - cli:.1f} ms)")
    if pod:
        print(f"  podman --runtime runc       {pod:8.1f} ms   ratio minibox/podman = {cli / pod:.2f}"
              f" (target <= 0.5)")
    print("create -> exit of `true` with cgroups, median:")
    print(f"  minibox API (HTTP+Celery)   {api:8.1f} ms")
    print(f"  minibox runtime layer       {rt:8.1f} ms   (target <= 25)")
    if crun:
        print(f"  crun run                    {crun:8.1f} ms   ratio api/crun = {api / crun:.2f}")


if __name__ == "__main__":
    main()

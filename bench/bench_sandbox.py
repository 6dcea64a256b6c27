#!/usr/bin/env python3
"""Per-block overhead of the build sandbox (minibox.sandbox.run_block) on this machine.

    sudo .venv/bin/python bench/bench_sandbox.py [--runs 50]

Builds a busybox rootfs in a temp dir and times, as medians of N runs:
  chroot       `chroot DIR /bin/true` (subprocess from Python; the no-isolation floor)
  unshare      `unshare -m -p -f chroot DIR /bin/true` (namespaces via util-linux)
  run_block    one block with one `RUN true` (shell form: /bin/sh -c true), fresh
               upper/work/scratch each time: fork, namespaces, overlay, /proc /sys /dev
               /tmp resolv.conf hosts, pivot_root, exec, reap, stub cleanup, unmount
  run_block-x  the same with the exec form RUN ["/bin/true"]
  run_block-none  run_block with --network none (a new empty namespace instead of the build
               network's prepared one)
  net take     taking a prepared namespace from the build network's pool (the per-block
               network cost), and net make: preparing one (namespace, veth, address,
               route; what the pool's thread does off the block's path)
and prints each one's ratio to chroot and run_block's overhead beyond the command itself
(run_block minus `chroot DIR /bin/sh -c true`).  Needs root, overlayfs and /bin/busybox.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minibox.sandbox import SandboxSpec, run_block  # noqa: E402

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def make_rootfs(root: str) -> None:
    os.makedirs(f"{root}/bin")
    os.makedirs(f"{root}/etc")
    shutil.copy2("/bin/busybox", f"{root}/bin/busybox")
    for name in ("sh", "true", "echo"):
        os.symlink("busybox", f"{root}/bin/{name}")
    with open(f"{root}/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")


def time_cmd(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - t


def bench_network(base: str):
    """The build network for this run: its own bridge, subnet and chains (or MINIBOX_*)."""
    from minibox.config import Settings
    from minibox.net import buildnet
    from minibox.net.network import host_routes

    env = dict(os.environ, MINIBOX_DATA_ROOT=base)
    taken = [r for _d, r in host_routes()]
    free = next(f"10.254.{i}.0/24" for i in range(250, 0, -1)
                if not any(r.overlaps(ipaddress.IPv4Network(f"10.254.{i}.0/24")) for r in taken))
    env.setdefault("MINIBOX_BUILD_BRIDGE", f"mbbench{os.getpid() % 10000}")
    env.setdefault("MINIBOX_BUILD_SUBNET", free)
    env.setdefault("MINIBOX_NET_CHAIN_PREFIX", f"MBBENCH{os.getpid() % 10000}")
    return buildnet.configure(Settings.from_env(env))


def time_net(pool, runs: dict) -> None:
    t = time.perf_counter()
    slot = pool.take()
    runs["net take"].append(time.perf_counter() - t)
    pool.give_back(slot)
    pool.wait_idle()
    t = time.perf_counter()
    slot = pool._make()
    runs["net make"].append(time.perf_counter() - t)
    pool._destroy(slot)


def time_block(base: str, lower: str, i: int, step: dict,
               network: str = "build") -> tuple[float, float]:
    d = f"{base}/blk{i}"
    for sub in ("upper", "work", "scratch"):
        os.makedirs(f"{d}/{sub}")
    spec = SandboxSpec(lower_dirs=[lower], upper_dir=f"{d}/upper", work_dir=f"{d}/work",
                       scratch_dir=f"{d}/scratch", steps=[step], network=network)
    t = time.perf_counter()
    out = run_block(spec, lambda b: None, lambda e: None)
    wall = time.perf_counter() - t
    shutil.rmtree(d)
    return wall, out.setup_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="mbx-bench-")
    pool = None
    try:
        lower = f"{base}/lower"
        make_rootfs(lower)
        shell = {"op": "run", "line": 1, "command": "true", "argv": None,
                 "env": {"PATH": PATH}, "workdir": "/", "user": ""}
        execf = dict(shell, argv=["/bin/true"])
        runs = {"chroot": [], "chroot sh -c": [], "unshare": [], "run_block": [],
                "run_block-x": [], "run_block-none": [], "setup": [], "net take": [],
                "net make": []}
        pool = bench_network(base)
        pool.take()                     # the pool's first fill
        pool.wait_idle()
        for i in range(args.runs):
            runs["chroot"].append(time_cmd(["chroot", lower, "/bin/true"]))
            runs["chroot sh -c"].append(time_cmd(["chroot", lower, "/bin/sh", "-c", "true"]))
            runs["unshare"].append(time_cmd(["unshare", "-m", "-p", "-f", "chroot", lower,
                                              "/bin/true"]))
            pool.wait_idle()          # refills run between blocks, off the block's path
            wall, setup = time_block(base, lower, 2 * i, shell)
            runs["run_block"].append(wall)
            runs["setup"].append(setup)
            pool.wait_idle()
            runs["run_block-x"].append(time_block(base, lower, 2 * i + 1, execf)[0])
            pool.wait_idle()
            runs["run_block-none"].append(time_block(base, lower, 2 * i, shell, "none")[0])
            time_net(pool, runs)
            pool.wait_idle()
        med = {k: statistics.median(v) * 1000 for k, v in runs.items()}
        low = {k: min(v) * 1000 for k, v in runs.items()}
        floor = med["chroot"]
        print(f"{args.runs} runs, load average {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} cpus; ratio = median / median of chroot")
        print(f"  {'':<14} {'median':>9} {'min':>9}   ratio")
        for name in ("chroot", "chroot sh -c", "unshare", "run_block", "run_block-x",
                     "run_block-none"):
            print(f"  {name:<14} {med[name]:6.2f} ms {low[name]:6.2f} ms   "
                  f"x{med[name] / floor:5.2f}")
        print(f"  run_block: sandbox ready after {med['setup']:.2f} ms (fork, namespaces, "
              f"overlay)")
        print(f"  run_block overhead beyond the command itself (run_block - chroot sh -c): "
              f"{med['run_block'] - med['chroot sh -c']:.2f} ms")
        print(f"  build network per block: take from the pool {med['net take']:.3f} ms "
              f"(run_block - run_block-none: {med['run_block'] - med['run_block-none']:+.2f} "
              f"ms); preparing one off the block's path: {med['net make']:.2f} ms")
    finally:
        if pool is not None:
            pool.close()
            pool.net.remove(pool.settings)
            from minibox.net import iptables
            iptables.Rules(pool.settings).remove_all()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

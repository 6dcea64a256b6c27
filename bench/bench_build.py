"""Build benchmarks, MiniBox side by side with buildah in the same run.

    .venv/bin/python bench/bench_build.py            # both
    .venv/bin/python bench/bench_build.py dag        # 4 parallel `sleep 2` blocks + a final one
    .venv/bin/python bench/bench_build.py rebuild    # unchanged rebuild of the Node example
    .venv/bin/python bench/bench_build.py waves      # 200 `RUN echo` blocks in 10 waves, and
                                                     # their unchanged rebuild (scheduling cost);
                                                     # prints each run's per-block stages and
                                                     # the CPU time of the daemon and workers

Starts its own miniboxd (embedded default, temporary data root) and, for the DAG, runs
`buildah bud --jobs 4` on the equivalent multi-stage Containerfile with its own storage
root; everything it makes is removed at the end.  Prints each figure, the target and the
ratio.  Needs root and the offline busybox base (docker-free-dev/make-base-images.sh).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.farmkit import REPO, Farm, busybox_tarball, write_ctx  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def timed(argv: list[str], env: dict | None = None, cwd=None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
    return took


def minibox_cli(farm: Farm) -> list[str]:
    return [str(Path(sys.executable).parent / "minibox")]


def dag_minibox(farm: Farm, work: Path) -> list[float]:
    times = []
    for i in range(RUNS):
        blocks = "".join(f"BLOCK s{j}\n    RUN sleep 2 && echo {i} > /s{j}\n" for j in range(4))
        final = "BLOCK final\n" + "".join(f"    NEED s{j}\n" for j in range(4)) + \
            "    RUN cat /s0 /s1 /s2 /s3 > /all\n"
        ctx = write_ctx(work / f"dag{i}", {"MiniBox": "BASE busybox\n" + blocks + final})
        times.append(timed(minibox_cli(farm) + ["build", "--progress", "plain", "-t",
                                                 f"dag{i}", str(ctx)], env=farm.env))
    return times


def dag_buildah(work: Path) -> list[float] | None:
    if not shutil.which("buildah"):
        return None
    root = Path(tempfile.mkdtemp(prefix="mbx-bench-buildah-", dir="/var/tmp"))
    common = ["buildah", "--root", str(root / "root"), "--runroot", str(root / "run"),
              "--storage-driver", "overlay"]
    try:
        base_ctx = work / "buildah-base"
        base_ctx.mkdir()
        shutil.copy(busybox_tarball(), base_ctx / "busybox.tar.gz")
        (base_ctx / "Containerfile").write_text("FROM scratch\nADD busybox.tar.gz /\n")
        timed(common + ["bud", "-t", "mbx-bench-busybox", str(base_ctx)])
        times = []
        for i in range(RUNS):
            stages = "".join(f"FROM mbx-bench-busybox AS s{j}\nRUN sleep 2 && echo {i} > /s{j}\n"
                             for j in range(4))
            final = "FROM mbx-bench-busybox\n" + "".join(
                f"COPY --from=s{j} /s{j} /s{j}\n" for j in range(4)) + \
                "RUN cat /s0 /s1 /s2 /s3 > /all\n"
            ctx = work / f"buildah{i}"
            ctx.mkdir()
            (ctx / "Containerfile").write_text(stages + final)
            times.append(timed(common + ["bud", "--jobs", "4", "--layers=false",
                                         "--isolation", "chroot",
                                         "--ulimit", "nofile=1024:1024",
                                         "--ulimit", "nproc=1024:1024",
                                         "-t", f"mbx-bench-dag{i}", str(ctx)]))
        return times
    finally:
        subprocess.run(common + ["rm", "--all"], capture_output=True)
        subprocess.run(common + ["rmi", "--all", "--force"], capture_output=True)
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if str(root) in line.split()[4]:
                subprocess.run(["umount", "-l", line.split()[4]], check=False)
        shutil.rmtree(root, ignore_errors=True)


def waves_file(run: int, width: int = 20, depth: int = 10) -> str:
    """``depth`` waves of ``width`` one-line blocks (block j of a wave NEEDs block j of the
    wave before), and a last block that BNEEDs the last wave, so every block is built."""
    out = ["BASE busybox"]
    for w in range(depth):
        for j in range(width):
            out.append(f"BLOCK w{w}b{j}")
            if w:
                out.append(f"    NEED w{w - 1}b{j}")
            out.append(f"    RUN echo {run} {w} {j} > /w{w}b{j}")
    out.append("BLOCK all")
    out += [f"    BNEED w{depth - 1}b{j}" for j in range(width)]
    out.append("    RUN true")
    return "\n".join(out) + "\n"


def waves(farm: Farm, work: Path) -> tuple[list[float], list[float]]:
    cli = minibox_cli(farm)
    fresh, again = [], []
    for i in range(RUNS):
        ctx = write_ctx(work / f"waves{i}", {"MiniBox": waves_file(i)})
        argv = cli + ["build", "--progress", "plain", "-t", f"waves{i}", str(ctx)]
        cpu0 = farm_cpu(farm)
        fresh.append(timed(argv, env=farm.env))
        cpu1 = farm_cpu(farm)
        stages = block_stages(farm)
        again.append(timed(argv, env=farm.env))
        cpu2 = farm_cpu(farm)
        print(f"  run {i}: fresh {fresh[-1]:.3f} s; per block (median): {stages}")
        print(f"         CPU s, fresh: {cpu_delta(cpu0, cpu1)}; rebuild: {cpu_delta(cpu1, cpu2)}")
    return fresh, again


def farm_cpu(farm: Farm) -> dict[str, float]:
    """CPU seconds (user + system, with reaped children: a block's sandbox counts for the
    worker process that forked it) of the farm's processes, by kind."""
    tick = os.sysconf("SC_CLK_TCK")
    mark = f"MINIBOX_DATA_ROOT={farm.root}".encode()
    out: dict[str, float] = {}
    for d in Path("/proc").iterdir():
        try:
            if not d.name.isdigit() or mark not in (d / "environ").read_bytes():
                continue
            cmd = (d / "cmdline").read_bytes()
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = "daemon" if b"daemon" in cmd else "build workers" if b"build" in cmd or \
            b"sandbox.zygote" in cmd else \
            "runtime worker" if b"runtime" in cmd else "other"
        out[kind] = out.get(kind, 0.0) + sum(int(x) for x in fields[11:15]) / tick
    return out


def cpu_delta(before: dict, after: dict) -> str:
    return ", ".join(f"{k} {after[k] - before.get(k, 0.0):.2f}" for k in sorted(after)
                     if after[k] - before.get(k, 0.0) >= 0.01) or "-"


def block_stages(farm: Farm) -> str:
    """Where a block's time goes, from the last job's events: queued (sent, not yet taken
    by a worker), setup (the worker's start to the sandbox's first step) and run (first
    step to done: the steps and the layer's commit)."""
    import json

    with farm.http(60) as c:
        r = c.get(f"/builds/{farm.last_job()['id']}/events", params={"follow": "true"})
    first: dict[str, dict[str, float]] = {}
    for line in r.text.splitlines():
        ev = json.loads(line)
        if ev.get("block"):
            first.setdefault(ev["block"], {}).setdefault(ev["type"], ev["time"])

    def med(a: str, b: str) -> str:
        xs = [t[b] - t[a] for t in first.values() if a in t and b in t]
        return f"{statistics.median(xs) * 1000:.0f} ms" if xs else "-"
    return (f"queued {med('block_queued', 'block_start')}, setup "
            f"{med('block_start', 'block_step')}, run {med('block_step', 'block_done')}")


def rebuild(farm: Farm, work: Path) -> list[float]:
    examples = REPO / "docker-free-dev/examples"
    app = work / "node-app"
    shutil.copytree(examples / "node-app", app)
    cli = minibox_cli(farm)
    timed(cli + ["build", "-q", "-t", "alpine-standin", str(examples / "alpine-standin")],
          env=farm.env)
    timed(cli + ["build", "-q", "-t", "node-app", str(app)], env=farm.env)
    return [timed(cli + ["build", "--progress", "plain", "-t", "node-app", str(app)],
                  env=farm.env) for _ in range(max(RUNS, 5))]


def report(name: str, times: list[float], target: str, peer: list[float] | None = None,
           peer_name: str = "") -> None:
    med = statistics.median(times)
    line = f"{name:<44} minibox {med:6.3f}s (runs {', '.join(f'{t:.3f}' for t in times)})"
    line += f"  target {target}"
    print(line)
    if peer:
        pm = statistics.median(peer)
        print(f"{'':<44} {peer_name} {pm:6.3f}s   ratio minibox/peer = {med / pm:.2f}")


def main(argv: list[str]) -> None:
    which = argv[1:] or ["dag", "rebuild"]
    work = Path(tempfile.mkdtemp(prefix="mbx-bench-", dir="/var/tmp"))
    farm = Farm().start()
    try:
        ctx = write_ctx(work / "base", {"MiniBox": "BASE busybox.tar.gz\n"})
        shutil.copy(busybox_tarball(), ctx / "busybox.tar.gz")
        farm.build(ctx, "busybox")
        warm = write_ctx(work / "warm", {"MiniBox": "BASE busybox\nBLOCK w\n    RUN true\n"})
        farm.build(warm, "warm")   # the build workers import their modules once
        if "dag" in which:
            mb = dag_minibox(farm, work)
            peer = dag_buildah(work)
            report("DAG: 4 x sleep 2 in parallel + final block", mb,
                   "<= 2.4 s, <= 0.9 x buildah", peer, "buildah bud --jobs 4")
        if "waves" in which:
            fresh, again = waves(farm, work)
            report("200 RUN echo blocks in 10 waves (+1), fresh", fresh, "<= 3 s")
            report("the same, unchanged rebuild", again, "<= 0.2 s")
        if "rebuild" in which:
            report("unchanged rebuild, Node example, CLI incl.", rebuild(farm, work),
                   "<= 0.3 s")
    finally:
        farm.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)

"""``minibox compose up -d`` of 10 services from built images, and ``compose down``, CLI
end to end (targets: up <= 3 s, down <= 2 s).

    sudo .venv/bin/python bench/bench_compose.py [-n 5] [--services 10]

Each round: a fresh ``up -d`` (every container created and started, the services in
parallel, half of them waiting for another with ``depends_on``), then ``down``.  Prints the
median and the worst of each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _farm import median, start_farm


def compose_file(n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [f"  s{i}:", "    image: busybox", '    command: ["sleep", "600"]']
        if i % 2:
            lines += ["    depends_on:", f"      - s{i - 1}"]
    return "\n".join(lines) + "\n"


def timed(argv, cwd, env) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:])} failed: {r.stderr[-600:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--services", type=int, default=10)
    a = ap.parse_args()
    farm = start_farm()
    d = Path(tempfile.mkdtemp(prefix="bench-compose-"))
    try:
        (d / "minibox-compose.yaml").write_text(compose_file(a.services))
        env = dict(farm.env)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cli = [sys.executable, "-m", "minibox.cli.main", "compose", "-p", "bench"]
        ups, downs = [], []
        for _ in range(a.n + 1):                       # the first round warms up
            ups.append(timed(cli + ["up", "-d"], d, env))
            downs.append(timed(cli + ["down", "-t", "5"], d, env))
        ups, downs = ups[1:], downs[1:]
        print(f"compose up -d, {a.services} services: median {median(ups):.2f} s, "
              f"worst {max(ups):.2f} s (target <= 3 s)")
        print(f"compose down, {a.services} services: median {median(downs):.2f} s, "
              f"worst {max(downs):.2f} s (target <= 2 s)")
        print(f"load average: {os.getloadavg()[0]:.1f}")
    finally:
        farm.cleanup()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

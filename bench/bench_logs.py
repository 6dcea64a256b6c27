"""``minibox logs`` and ``logs -f`` throughput on short lines, vs ``podman logs``.

    sudo .venv/bin/python bench/bench_logs.py [-n 5] [--lines 375000] [--follow-lines 200000]

``logs``: a finished container whose output is ``seq 1000000 ...`` (8-byte lines, 3 MB for
the default 375000), read back end to end by the CLI into /dev/null (median of n), plain and
with -t.  ``logs -f``: a follower started while the container sleeps 1 s; it then
writes ``seq 1 N`` as fast as it can with --log-opt max-size=1m (so it rotates often); the
rate is counted from the follower's first line to its last, every line is checked to
arrive exactly once, in order, and the lag of the last line behind the writer is shown.
If podman is installed, the same containers run under podman (``localhost/mbx-busybox``,
imported from the same tarball as bench/bench_run.py does) and ``podman logs`` /
``podman logs -f`` are timed the same way; its containers are removed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time

from _farm import median, start_farm

BUSYBOX = "/var/cache/minibox-dev/busybox.tar.gz"
PODMAN_RUN = ["podman", "run", "--network", "none", "--ulimit", "nofile=1024:1024",
              "--ulimit", "nproc=1024:1024", "--runtime", "runc"]
FIRST = 1000000          # seq FIRST..: every line is 7 digits + newline = 8 bytes


def timed_read(argv, env=None) -> tuple[float, int, int]:
    """Seconds for ``argv`` to write all of its output, and how many bytes and lines."""
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {r.stderr.decode()[-400:]}")
    return dt, len(r.stdout), r.stdout.count(b"\n")


def follow_rate(argv, expected: int, env=None) -> tuple[float, str, float]:
    """Lines/s a follower (``argv``, started before the writer) delivers, from its first
    line to its last; whether it got ``1..expected`` exactly once in order; and the wall
    clock time it got the last line."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stamps: list[float] = []
    wall: list[float] = []
    lines: list[bytes] = []

    def read():
        for chunk in iter(lambda: p.stdout.read1(1 << 20), b""):
            stamps.append(time.perf_counter())
            wall.append(time.time())
            lines.append(chunk)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        p.wait(120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(10)
    got = b"".join(lines).split()
    ok = "all lines once, in order" if got == [b"%d" % i for i in range(1, expected + 1)] \
        else f"WRONG: {len(got)} lines of {expected}"
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    return len(got) / span, ok, wall[-1] if wall else float("nan")


def lag_ms(stamped_line: bytes, received: float) -> float:
    """How long after the container wrote the line (its -t stamp, RFC 3339 with ns) the
    follower had it."""
    from datetime import datetime
    text = stamped_line.split()[0].decode()
    m = re.match(r"(.*T[\d:]+)(\.\d+)?(Z|[+-][\d:]+)$", text)
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return (received - datetime.fromisoformat(m.group(1) + frac + zone).timestamp()) * 1000


# --- minibox --------------------------------------------------------------------------------
def mbx(farm, *args) -> list[str]:
    return [sys.executable, "-m", "minibox.cli.main", *args]


def cli_env(farm) -> dict:
    env = dict(farm.env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)     # as installed: with the bytecode cache
    return env


def bench_minibox(farm, n: int, lines: int, follow_lines: int) -> dict:
    env = cli_env(farm)
    cid = subprocess.run(mbx(farm, "run", "-d", "busybox", "seq", str(FIRST),
                             str(FIRST + lines - 1)), env=env, capture_output=True,
                         check=True).stdout.decode().strip()
    with farm.http(70) as c:
        c.post(f"/containers/{cid}/wait", params={"timeout": 60})
    res = {}
    for key, extra in (("logs", []), ("logs -t", ["-t"])):
        runs = [timed_read(mbx(farm, "logs", *extra, cid), env) for _ in range(n)]
        res[key] = (median([r[0] for r in runs]), *runs[0][1:])
    subprocess.run(mbx(farm, "rm", cid), env=env, capture_output=True, check=True)
    # the follower joins during the container's sleep (it would read a backlog otherwise)
    cid = subprocess.run(mbx(farm, "run", "-d", "--log-opt", "max-size=1m", "busybox", "sh",
                             "-c", f"sleep 1; seq 1 {follow_lines}"), env=env,
                         capture_output=True, check=True).stdout.decode().strip()
    res["follow"] = follow_rate(mbx(farm, "logs", "-f", cid), follow_lines, env)
    last = subprocess.run(mbx(farm, "logs", "-t", "-n", "1", cid), env=env,
                          capture_output=True).stdout
    res["lag"] = lag_ms(last, res["follow"][2])
    subprocess.run(mbx(farm, "rm", "-f", cid), env=env, capture_output=True)
    return res


# --- podman ---------------------------------------------------------------------------------
def bench_podman(n: int, lines: int, follow_lines: int) -> dict | None:
    if not shutil.which("podman"):
        return None
    subprocess.run(["podman", "import", BUSYBOX, "localhost/mbx-busybox:latest"],
                   capture_output=True, check=True)
    name = f"mbx-bench-logs-{time.time_ns()}"
    res = {}
    try:
        subprocess.run(PODMAN_RUN + ["--name", name, "localhost/mbx-busybox", "seq", str(FIRST),
                                     str(FIRST + lines - 1)], capture_output=True, check=True)
        for key, extra in (("logs", []), ("logs -t", ["-t"])):
            runs = [timed_read(["podman", "logs", *extra, name]) for _ in range(n)]
            res[key] = (median([r[0] for r in runs]), *runs[0][1:])
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
        subprocess.run(PODMAN_RUN + ["-d", "--name", name, "localhost/mbx-busybox", "sh", "-c",
                                     f"sleep 1; seq 1 {follow_lines}"],
                       capture_output=True, check=True)
        res["follow"] = follow_rate(["podman", "logs", "-f", name], follow_lines)
        last = subprocess.run(["podman", "logs", "-t", "--tail", "1", name],
                              capture_output=True).stdout
        res["lag"] = lag_ms(last, res["follow"][2])
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    return res


def report(title: str, res: dict) -> None:
    print(title)
    for key in ("logs", "logs -t"):
        secs, size, lines = res[key]
        print(f"  {key:8} {secs * 1000:8.0f} ms  {size / secs / 1e6:7.1f} MB/s "
              f"{lines / secs:11,.0f} lines/s  ({size:,} bytes)")
    rate, ok, _ = res["follow"]
    print(f"  logs -f  {rate:29,.0f} lines/s  ({ok}; the last line "
          f"{res['lag']:.0f} ms after it was written)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--lines", type=int, default=375000)
    ap.add_argument("--follow-lines", type=int, default=200000)
    a = ap.parse_args()
    farm = start_farm()
    try:
        mine = bench_minibox(farm, a.n, a.lines, a.follow_lines)
    finally:
        farm.cleanup()
    pod = bench_podman(a.n, a.lines, a.follow_lines)
    report(f"minibox, {a.lines} lines of 8 bytes (median of {a.n}):", mine)
    if pod:
        report("podman (runc):", pod)


if __name__ == "__main__":
    main()

"""Port maps: ``minibox run --rm -p PORT:80 busybox true`` vs ``podman run --rm -p PORT:80``
(runc, its default bridge network), side by side, and the throughput of a 1 GB transfer
through a 127.0.0.1 port map vs a direct connection to the container's address.

    sudo .venv/bin/python bench/bench_ports.py [-n 10] [--gb 1]

Only loopback and the bench farm's own bridge carry traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from _farm import start_farm

from bench_run import bench_cli, bench_podman

CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(host: str, port: int, total: int) -> float:
    """MB/s of ``total`` bytes to a receiver that reads and discards, until it closes."""
    buf = bytes(CHUNK)
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with s:
        t = time.perf_counter()
        sent = 0
        while sent < total:
            s.sendall(buf)
            sent += len(buf)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(120)
        while s.recv(65536):
            pass
        return total / (time.perf_counter() - t) / 1e6


def bench_transfer(farm, gb: float) -> tuple[float, float]:
    port = free_port()
    cid = subprocess.run([sys.executable, "-m", "minibox.cli.main", "run", "-d", "-p",
                          f"127.0.0.1:{port}:5000", "busybox", "sh", "-c",
                          "while true; do nc -l -p 5000 > /dev/null; done"],
                         env=farm.env, capture_output=True, text=True, check=True).stdout.strip()
    try:
        info = json.loads(subprocess.run([sys.executable, "-m", "minibox.cli.main", "inspect",
                                          cid], env=farm.env, capture_output=True, text=True,
                                         check=True).stdout)[0]["network"]
        total = int(gb * (1 << 30))
        direct = send(info["ip"], 5000, total)
        mapped = send("127.0.0.1", port, total)
        return direct, mapped
    finally:
        subprocess.run([sys.executable, "-m", "minibox.cli.main", "rm", "-f", cid],
                       env=farm.env, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--gb", type=float, default=1.0)
    args = ap.parse_args()
    farm = start_farm()
    try:
        mb = bench_cli(farm, args.n, "-p", f"{free_port()}:80")
        direct, mapped = bench_transfer(farm, args.gb)
    finally:
        farm.cleanup()
    pod = bench_podman(args.n, "-p", f"{free_port()}:80")
    print(f"run --rm -p PORT:80 busybox true, median of {args.n} "
          f"(load {os.getloadavg()[0]:.1f}):")
    print(f"  minibox          {mb:8.1f} ms")
    if pod:
        print(f"  podman (runc)    {pod:8.1f} ms   ratio minibox/podman = {mb / pod:.2f} "
              "(target <= 0.35)")
    print(f"{args.gb:g} GB through a 127.0.0.1 port map: {mapped:8.1f} MB/s; direct to the "
          f"container: {direct:8.1f} MB/s; ratio {mapped / direct:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()

"""500 idle containers: start time, total memory (PSS of every monitor, init and workload
process), time to stop 100 of them; and ``stats --no-stream`` latency of one container.

    sudo .venv/bin/python bench/bench_idle.py [-n 500] [--stop 100] [--clients 4]

Containers are started through the API (POST /containers, detached ``sleep 3600``), stopped
with one POST /containers/stop, and all removed at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _farm import median, start_farm


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def memory(farm, ids: list[str]) -> dict:
    from minibox.runtime.state import StateStore
    store = StateStore(farm.root)
    tot = {"monitor": 0, "init": 0, "workload": 0}
    for cid in ids:
        st = store.load(cid).state
        tot["monitor"] += pss_kib(st["monitor_pid"])
        tot["init"] += pss_kib(st["pid"])
        tot["workload"] += sum(pss_kib(c) for c in children(st["pid"]))
    return tot


def start_concurrently(api: str, auth: str, body: dict, n: int, clients: int) -> list[str]:
    """n starts from ``clients`` threads, each with its own keep-alive connection.  The
    driver is http.client, not httpx: it runs on the same two cores as the engine, and
    httpx costs about twice its CPU per request."""
    import http.client
    import json
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit
    share = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    url = urlsplit(api)
    data = json.dumps(body).encode()

    def one_client(k: int) -> list[str]:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        out = []
        try:
            for _ in range(k):
                conn.request("POST", "/containers", data, {"Content-Type": "application/json",
                                                           "Authorization": auth})
                resp = conn.getresponse()
                answer = json.loads(resp.read())
                if resp.status != 200:
                    raise SystemExit(f"start failed: {answer}")
                out.append(answer["id"])
        finally:
            conn.close()
        return out
    with ThreadPoolExecutor(clients) as pool:
        return [cid for part in pool.map(one_client, share) for cid in part]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--stop", type=int, default=100)
    ap.add_argument("--clients", type=int, default=4,
                    help="concurrent API clients for the starts (default 4; 1: one after another)")
    args = ap.parse_args()
    farm = start_farm()
    try:
        with farm.http(120) as c:
            body = {"image": "busybox", "command": ["sleep", "3600"], "network": "none"}
            c.post("/containers", json=body).raise_for_status()      # warm up
            t = time.perf_counter()
            ids = start_concurrently(farm.api, c.headers["authorization"], body, args.n,
                                     max(1, args.clients))
            start_s = time.perf_counter() - t
            time.sleep(1.0)
            mem = memory(farm, ids)
            total_mib = sum(mem.values()) / 1024
            lat = []
            for _ in range(20):
                t = time.perf_counter()
                c.get(f"/containers/{ids[0]}/stats").raise_for_status()
                lat.append((time.perf_counter() - t) * 1000)
            cli = []
            for _ in range(5):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "minibox.cli.main", "stats", "--no-stream",
                                ids[0][:12]], env=farm.env, capture_output=True, check=True)
                cli.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            c.post("/containers/stop", json={"ids": ids[:args.stop], "t": 10}).raise_for_status()
            stop_s = time.perf_counter() - t
    finally:
        farm.cleanup()
    n = args.n
    how = "one after another" if args.clients <= 1 else f"{args.clients} concurrent clients"
    print(f"{n} idle containers (busybox sleep, --network none), started {how}:")
    print(f"  started in          {start_s:7.2f} s   ({start_s / n * 1000:.1f} ms each; target <= 10 s"
          f" for 500)")
    print(f"  memory (PSS) total  {total_mib:7.1f} MiB (target <= 500): monitors "
          f"{mem['monitor'] / 1024:.1f}, inits {mem['init'] / 1024:.1f}, "
          f"workloads {mem['workload'] / 1024:.1f}; {total_mib * 1024 / n:.0f} KiB per container")
    print(f"  stop {args.stop:<4}           {stop_s:7.2f} s   (target <= 2 s)")
    print(f"stats of one container: API {median(lat):.1f} ms median (target <= 50), "
          f"CLI end to end {median(cli):.0f} ms")


if __name__ == "__main__":
    main()

"""Resource usage from cgroup counters, with CPU % from the previous sample (no waiting).

``Sampler`` keeps the last (cpu ns, wall ns) per container in memory, so a one-shot
``stats --no-stream`` answers at once (first sample: CPU % since the container started).
"""

from __future__ import annotations

import os
import threading
import time

from minibox.runtime.limits.cgroups import Cgroup, _read

UNLIMITED = 1 << 62


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return default


def memory(cg: Cgroup) -> tuple[int, int]:
    d = cg.path("memory")
    if not d:
        return 0, 0
    if cg.version == 2:
        usage, limit = _int(_read(f"{d}/memory.current")), _read(f"{d}/memory.max")
        limit = 0 if limit in ("", "max") else _int(limit)
        stat = _kv(_read(f"{d}/memory.stat"))
        return max(0, usage - stat.get("inactive_file", 0)), limit
    usage = _int(_read(f"{d}/memory.usage_in_bytes"))
    limit = _int(_read(f"{d}/memory.limit_in_bytes"))
    stat = _kv(_read(f"{d}/memory.stat"))
    return max(0, usage - stat.get("total_inactive_file", 0)), 0 if limit >= UNLIMITED else limit


def cpu_ns(cg: Cgroup) -> int:
    if cg.version == 2:
        return _kv(_read(f"{cg.dirs[0]}/cpu.stat")).get("usage_usec", 0) * 1000 if cg.dirs else 0
    d = cg.path("cpuacct")
    return _int(_read(f"{d}/cpuacct.usage")) if d else 0


def pids(cg: Cgroup) -> int:
    d = cg.path("pids")
    return _int(_read(f"{d}/pids.current")) if d else 0


def block_io(cg: Cgroup) -> tuple[int, int]:
    rd = wr = 0
    if cg.version == 2:
        for line in _read(f"{cg.dirs[0]}/io.stat").splitlines() if cg.dirs else []:
            for part in line.split()[1:]:
                k, _, v = part.partition("=")
                rd += int(v) if k == "rbytes" else 0
                wr += int(v) if k == "wbytes" else 0
        return rd, wr
    d = cg.path("blkio")
    for line in _read(f"{d}/blkio.throttle.io_service_bytes_recursive").splitlines() if d else []:
        parts = line.split()
        if len(parts) == 3:
            rd += int(parts[2]) if parts[1] == "Read" else 0
            wr += int(parts[2]) if parts[1] == "Write" else 0
    return rd, wr


def network(pid: int) -> tuple[int, int]:
    """(rx, tx) bytes of the container's interfaces, from its own /proc/PID/net/dev."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, data = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = data.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


class Sampler:
    def __init__(self):
        self.prev: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()

    def sample(self, st: dict) -> dict:
        cid = st["id"]
        cg = Cgroup.from_dict(st.get("cgroup"))
        running = st.get("status") == "running"
        now = time.monotonic_ns()
        used = cpu_ns(cg) if running else 0
        with self.lock:
            prev = self.prev.get(cid)
            if prev is None:
                started = st.get("started_at") or time.time()
                prev = (0, now - int(max(0.001, time.time() - started) * 1e9))
            self.prev[cid] = (used, now)
        wall = max(1, now - prev[1])
        ncpu = os.cpu_count() or 1
        pct = max(0.0, (used - prev[0]) / wall * 100.0) if running else 0.0
        mem, limit = memory(cg) if running else (0, 0)
        rd, wr = block_io(cg) if running else (0, 0)
        rx, tx = network(st["pid"]) if running and st.get("pid") else (0, 0)
        return {"id": cid, "name": st.get("name"), "cpu_percent": round(pct, 2),
                "online_cpus": ncpu, "cpu_usage_ns": used, "memory_usage": mem,
                "memory_limit": limit, "memory_percent":
                round(mem / limit * 100, 2) if limit else 0.0,
                "pids": pids(cg) if running else 0, "block_read": rd, "block_write": wr,
                "net_rx": rx, "net_tx": tx}

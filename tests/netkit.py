"""Per-run network names for tests: every farm or sandbox session gets its own bridges, subnets
and iptables chain prefix (other engineers run tests on this machine at the same time), and
cleans them up."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess

from minibox.net.network import host_routes


def _taken() -> list[ipaddress.IPv4Network]:
    return [r for _dev, r in host_routes()]


def free_subnets(n: int, seed: str) -> list[str]:
    """``n`` /24s in 10.200.0.0-10.249.255.0 that overlap no host route, picked from ``seed``."""
    taken = _taken()
    h = int(hashlib.sha256(f"{seed}:{os.getpid()}".encode()).hexdigest(), 16)
    out: list[str] = []
    for i in range(50 * 256):
        k = (h + i * 7919) % (50 * 256)
        net = ipaddress.IPv4Network(f"10.{200 + k // 256}.{k % 256}.0/24")
        if not any(net.overlaps(t) for t in taken) and str(net) not in out:
            out.append(str(net))
            if len(out) == n:
                return out
    raise RuntimeError("no free test subnet")


def net_env(seed: str) -> dict[str, str]:
    """The MINIBOX_* network variables for one farm / session, derived from ``seed``."""
    tag = hashlib.sha256(f"{seed}:{os.getpid()}".encode()).hexdigest()[:6]
    build, bridge = free_subnets(2, seed)
    return {"MINIBOX_BRIDGE": f"mbt{tag}c", "MINIBOX_BRIDGE_SUBNET": bridge,
            "MINIBOX_BUILD_BRIDGE": f"mbt{tag}b", "MINIBOX_BUILD_SUBNET": build,
            "MINIBOX_NET_CHAIN_PREFIX": f"MBT{tag}"}


def cleanup(env: dict[str, str], data_root: str | None = None) -> None:
    """Remove the bridges and iptables chains a farm / session with ``env`` made."""
    from minibox.config import Settings
    from minibox.net import iptables

    e = dict(env)
    if data_root:
        e["MINIBOX_DATA_ROOT"] = data_root
    s = Settings.from_env(e)
    iptables.Rules(s).remove_all()
    for br in (s.bridge, s.build_bridge):
        subprocess.run(["ip", "link", "del", br], capture_output=True)


def wait_until(cond, what: str, timeout: float = 30) -> None:
    """Poll ``cond`` until true (a generous deadline: the machine is shared and slow)."""
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)

"""A build worker's network namespaces serve its next blocks (net/buildnet.py), and a block
sees nothing the one before it left.  Real sandboxes (run_block, busybox) in real namespaces
on this module's own build bridge; the pool is the worker's (``buildnet.pool()``)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys

import pytest

from minibox import kernel
from minibox.errors import BuildFailed, Cancelled
from minibox.config import Settings
from minibox.net import buildnet, links, netns
from minibox.sandbox import SandboxSpec, run_block
from tests import netkit
from tests.net.conftest import http_server, wait_for_address
from tests.sandbox.conftest import PATH, make_busybox_rootfs

PORT = 4242                                   # 0x1092 in /proc/net/tcp
NS = "echo netns: $(readlink /proc/self/ns/net)"
# a listener in the background of a RUN step, on the namespace's loopback (busybox nc: on
# [::], dual stack; the step goes on once it is listed, the listener dies with the step's
# PID namespace)
LISTEN = (f"nc -l -p {PORT} >/dev/null 2>&1 & for i in $(seq 200); do "
          f"grep -q ':{PORT:04X} ' /proc/net/tcp /proc/net/tcp6 && break; sleep 0.05; done")
SOCKETS = ("echo sockets: $(for t in tcp tcp6 udp udp6 raw unix; do "
           "tail -n +2 /proc/net/$t; done | wc -l)")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """This module's own build network (bridge, subnet, chains), removed at the end."""
    root = tmp_path_factory.mktemp("netreuse")
    env = netkit.net_env(str(root))
    try:
        yield Settings.from_env({**env, "MINIBOX_DATA_ROOT": str(root)})
    finally:
        netkit.cleanup(env, str(root))


@pytest.fixture(scope="module")
def lower(tmp_path_factory, netprobe) -> str:
    root = make_busybox_rootfs(tmp_path_factory.mktemp("reuse-lower") / "root")
    for applet in ("nc", "wget", "ip", "seq"):
        if not (root / "bin" / applet).exists():
            os.symlink("busybox", root / "bin" / applet)
    shutil.copy(netprobe, root / "bin" / "netprobe")
    return str(root)


@pytest.fixture
def pool(settings, monkeypatch):
    """The worker's pool (what run_block takes from and gives back to, saying whether the
    block's sandbox ended in order); once closed, none of its veths and leases is left."""
    p = buildnet.BuildNet(settings)
    monkeypatch.setattr(buildnet, "_pool", p)
    try:
        yield p
    finally:
        p.wait_idle()
        p.close()
    assert mine(p) == {}
    netkit.wait_until(lambda: _bridge_ports(settings) == [],
                      f"the pool's veths to go: {_bridge_ports(settings)}")


@pytest.fixture
def block(tmp_path, lower, pool):
    """Run one block of RUN steps on the build network in a fresh overlay; its output."""
    n = [0]

    def run(*commands: str, should_cancel=None) -> str:
        n[0] += 1
        base = tmp_path / f"block{n[0]}"
        dirs = [base / d for d in ("upper", "work", "scratch", "context")]
        for d in dirs:
            d.mkdir(parents=True)
        steps = [{"op": "run", "line": i + 1, "command": c, "argv": None,
                  "env": {"PATH": PATH}, "workdir": "/", "user": ""}
                 for i, c in enumerate(commands)]
        spec = SandboxSpec(lower_dirs=[lower], upper_dir=str(dirs[0]), work_dir=str(dirs[1]),
                           scratch_dir=str(dirs[2]), context_dir=str(dirs[3]), steps=steps,
                           network="build")
        out = bytearray()
        try:
            run_block(spec, out.extend, lambda ev: None, should_cancel)
        finally:
            pool.wait_idle()                 # the namespace checked and pooled, or retired
        return out.decode()
    return run


def value(out: str, key: str) -> str:
    lines = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith(key + ":")]
    assert len(lines) == 1, out
    return lines[0]


def mine(pool) -> dict[str, str]:
    """This pool's IP leases (address -> owner) in the network's IPAM file."""
    return {a: who for a, who in pool.ipam.leases().items() if who.startswith(pool.me + ":")}


def test_a_namespace_serves_the_next_block_of_the_worker_and_keeps_its_lease(pool, block):
    address = "echo address: $(ip -o -4 addr show eth0 | grep -o 'inet [0-9.]*')"
    first = block(NS, address)
    assert value(first, "address") in {f"inet {a}" for a in mine(pool)}   # held while pooled
    second = block(NS, address)
    assert value(second, "netns") == value(first, "netns"), dict(pool.stats)
    assert value(second, "address") == value(first, "address")
    assert pool.stats["reused"] == 2 and pool.stats["made"] == pool.size


def test_a_failed_step_hands_the_namespace_on_a_cancelled_block_does_not(pool, block):
    first = block(NS)
    with pytest.raises(BuildFailed):
        block("exit 3")                      # the sandbox reported the failure: in order
    assert pool.stats["reused"] == 2 and pool.stats["retired: outcome"] == 0
    started = []

    def cancel() -> bool:                    # once the step is running
        started.append(1)
        return len(started) > 3
    with pytest.raises(Cancelled):
        block("sleep 30", should_cancel=cancel)
    assert pool.stats["retired: outcome"] == 1, dict(pool.stats)
    assert value(block(NS), "netns") != value(first, "netns")


def test_a_block_sees_nothing_the_block_before_it_left(pool, block):
    first = block(f"{LISTEN}; echo listening: $(cat /proc/net/tcp* | grep -c ':{PORT:04X} ')",
                  NS)
    assert value(first, "listening") == "1", first          # it was there, in the background
    second = block(NS, f"echo probe: $(netprobe tcp 127.0.0.1 {PORT})", SOCKETS)
    assert value(second, "netns") == value(first, "netns")
    assert value(second, "probe").startswith("refused 111"), second
    assert value(second, "sockets") == "0", second


def test_a_namespace_with_a_socket_left_in_it_is_retired(pool, block):
    """A connection on the namespace's loopback leaves a TIME_WAIT entry behind it: the
    next block gets another namespace, with nothing listed."""
    first = block(f"{LISTEN}; echo probe: $(netprobe tcp 127.0.0.1 {PORT}); sleep 0.2; "
                  "echo tw: $(grep -o 'tw [0-9]*' /proc/net/sockstat | cut -d' ' -f2)", NS)
    assert value(first, "probe") == "connected", first
    assert value(first, "tw") != "0", first                     # the test's premise
    second = block(NS, SOCKETS)
    assert value(second, "netns") != value(first, "netns")
    assert value(second, "sockets") == "0", second
    assert pool.stats["retired: leftovers"] == 1


def test_a_reused_namespace_reaches_the_gateway(pool, block, settings, tmp_path):
    gateway = str(ipaddress.IPv4Network(settings.build_subnet).network_address + 1)
    wait_for_address(gateway)
    served = tmp_path / "served"
    served.mkdir()
    (served / "index").write_text("from the gateway\n")
    first = block(NS)
    with http_server(gateway, served) as port:
        second = block(NS, f"echo got: $(wget -q -O - http://{gateway}:{port}/index)")
    assert value(second, "netns") == value(first, "netns")
    assert value(second, "got") == "from the gateway", second


def test_a_step_cannot_change_the_namespace_it_would_hand_on(pool, block):
    """The premise of reuse: no CAP_NET_ADMIN, a read-only /proc/sys, no IPv6 on eth0
    (nothing route advertisements could change).  Each probe would change nothing even if
    it were allowed (lo gets its own MTU, the sysctl its own value)."""
    f = "/proc/sys/net/ipv4/conf/eth0/forwarding"
    first = block(NS, "echo capeff: $(grep CapEff /proc/self/status | cut -f2)",
                  "echo ipv6: $(grep -c -v ' lo$' /proc/net/if_inet6)",
                  "m=$(ip -o link show lo | grep -o 'mtu [0-9]*' | cut -d' ' -f2); "
                  "ip link set lo mtu $m 2>&1; echo link: $?",
                  f"v=$(cat {f}); (echo $v > {f}) 2>&1; echo sysctl: $?")
    assert not int(value(first, "capeff"), 16) & (1 << 12), first    # CAP_NET_ADMIN
    assert value(first, "ipv6") == "0", first      # eth0: no address a router could add to
    assert "Operation not permitted" in first and value(first, "link") != "0", first
    assert "Read-only file system" in first and value(first, "sysctl") != "0", first
    second = block(NS)
    assert value(second, "netns") == value(first, "netns")


# --- the pool's own decisions, on namespaces of its own (no sandbox) -----------------------

def _inode(slot) -> int:
    return os.fstat(slot.fd).st_ino


def _give_back(pool, slot, **kw) -> int:
    ino = _inode(slot)
    buildnet.BuildNet.give_back(pool, slot, **kw)
    pool.wait_idle()
    return ino


def _next_inode(pool) -> int:
    return _give_back(pool, pool.take(), reusable=True)


def test_without_the_callers_word_a_namespace_is_retired(pool):
    ino = _give_back(pool, pool.take())
    assert _next_inode(pool) != ino
    assert pool.stats["retired: outcome"] == 1


def test_a_namespace_is_retired_after_max_uses(pool, monkeypatch):
    monkeypatch.setattr(buildnet, "MAX_USES", 3)
    seen = [_give_back(pool, pool.take(), reusable=True) for _ in range(4)]
    assert seen[0] == seen[1] == seen[2] != seen[3]
    assert pool.stats["retired: uses"] == 1


def test_a_namespace_whose_veth_is_gone_is_retired(pool):
    slot = pool.take()
    links.remove_link(slot.host_if)
    ino = _give_back(pool, slot, reusable=True)
    assert _next_inode(pool) != ino
    assert pool.stats["retired: veth"] == 1


def test_a_namespace_with_another_address_is_retired(pool, settings):
    slot = pool.take()
    other = str(ipaddress.IPv4Network(settings.build_subnet).broadcast_address - 1)
    with netns.inside(slot.fd):
        kernel.set_ipv4_address("eth0", other, ipaddress.IPv4Network(settings.build_subnet)
                                .prefixlen)
    _give_back(pool, slot, reusable=True)
    assert pool.stats["retired: config"] == 1


def test_a_namespace_someone_still_holds_a_socket_in_is_retired(pool):
    slot = pool.take()
    with netns.inside(slot.fd):
        held = socket.socket(socket.AF_UNIX)
    try:
        _give_back(pool, slot, reusable=True)
    finally:
        held.close()
    assert pool.stats["retired: leftovers"] == 1


def _bridge_ports(settings) -> list[str]:
    return sorted(os.listdir(f"/sys/class/net/{settings.build_bridge}/brif"))


def test_close_leaves_no_veth_and_no_lease(settings):
    pool = buildnet.BuildNet(settings)
    try:
        reused = pool.take()
        _give_back(pool, reused, reusable=True)            # pooled, with its lease
        _give_back(pool, pool.take())                       # retired
        late = pool.take()
        assert mine(pool) and _bridge_ports(settings)
    finally:
        pool.wait_idle()
        pool.close()
    buildnet.BuildNet.give_back(pool, late, reusable=True)  # a block that ends after close
    pool.wait_idle()
    assert mine(pool) == {}
    netkit.wait_until(lambda: _bridge_ports(settings) == [],
                      f"the pool's veths to go: {_bridge_ports(settings)}")


def test_a_dead_workers_pooled_namespaces_and_leases_go(settings):
    """A worker killed with namespaces in its pool: the kernel deletes their veths, the
    next pool prunes their leases."""
    code = ("import sys\nfrom minibox.config import Settings\nfrom minibox.net import buildnet\n"
            "p = buildnet.BuildNet(Settings.from_env())\np.give_back(p.take(), reusable=True)\n"
            "p.wait_idle()\nprint(p.me, flush=True)\nimport os\nos._exit(0)\n")
    env = {**os.environ, "MINIBOX_DATA_ROOT": str(settings.data_root),
           "MINIBOX_BUILD_BRIDGE": settings.build_bridge,
           "MINIBOX_BUILD_SUBNET": settings.build_subnet,
           "MINIBOX_NET_CHAIN_PREFIX": settings.chain_prefix}
    me = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        check=True, timeout=120).stdout.strip()
    pid = int(me.split(":")[1])
    netkit.wait_until(lambda: not [p for p in _bridge_ports(settings)
                                   if p.startswith(f"mbb{pid % 100000:05d}")],
                      "the dead worker's veths to go")
    pool = buildnet.BuildNet(settings)
    try:
        assert not [who for who in pool.ipam.leases().values() if who.startswith(me + ":")]
    finally:
        pool.close()

"""Bridge networking, the default for `run` (Issue 10 item 1): eth0 with a leased address on
the farm's bridge, a default route, lo up, a resolv.conf without loopback resolvers; other
containers and the host reach it; its veth, address and rules are gone after rm and after it
exits on its own."""

from __future__ import annotations

import ipaddress
import json
import os
import socket

from minibox.config import Settings
from minibox.net.ipam import Ipam
from minibox.net.network import default_network
from tests.netkit import wait_until
from tests.runtime.conftest import run_ok


def _net(farm):
    return default_network(Settings.from_env(farm.env))


def _leases(farm) -> dict:
    return Ipam(farm.root / "net", _net(farm)).leases()


def _inspect(farm, name) -> dict:
    out = json.loads(run_ok(farm, "inspect", name))
    return out[0] if isinstance(out, list) else out


def test_container_gets_eth0_address_route_and_resolv(farm):
    net = _net(farm)
    out = run_ok(farm, "run", "--rm", "busybox", "sh", "-c",
                 "ip -o -4 addr show eth0; ip route; ip -o link show lo; cat /etc/resolv.conf")
    addr = out.split("inet ")[1].split()[0]
    assert ipaddress.IPv4Interface(addr).network == net.ip_network, out
    assert addr.split("/")[0] != net.gateway
    assert f"default via {net.gateway} dev eth0" in out, out
    assert "LOOPBACK,UP" in out, out
    servers = [ln.split()[1] for ln in out.splitlines() if ln.startswith("nameserver")]
    assert not any(ipaddress.ip_address(s).is_loopback for s in servers), out


def test_network_none_has_only_loopback(farm):
    out = run_ok(farm, "run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
    ifaces = sorted(ln.split(":")[0].strip() for ln in out.splitlines()[2:])
    assert ifaces == ["lo"]


def test_containers_and_host_reach_a_container_by_its_address(farm):
    run_ok(farm, "run", "-d", "--name", "web1", "busybox", "sh", "-c",
           "mkdir -p /www && echo hello-from-web1 > /www/index.html && "
           "httpd -f -p 8080 -h /www")
    try:
        ip = _inspect(farm, "web1")["network"]["ip"]
        def up():
            try:
                with socket.create_connection((ip, 8080), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(up, "web1's httpd")
        out = run_ok(farm, "run", "--rm", "busybox", "wget", "-q", "-O", "-",
                     f"http://{ip}:8080/index.html")
        assert "hello-from-web1" in out
    finally:
        run_ok(farm, "rm", "-f", "web1")


def test_rm_removes_the_veth_and_releases_the_address(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "600").strip()
    info = _inspect(farm, cid)["network"]
    assert os.path.exists(f"/sys/class/net/{info['host_if']}")
    assert _leases(farm).get(info["ip"]) == cid
    run_ok(farm, "rm", "-f", cid)
    assert info["ip"] not in _leases(farm)
    wait_until(lambda: not os.path.exists(f"/sys/class/net/{info['host_if']}"), "the veth to go")
    # the address is free again: the next container may get it
    cid2 = run_ok(farm, "run", "-d", "busybox", "sleep", "600").strip()
    try:
        assert _inspect(farm, cid2)["network"]["ip"] in _free_or(info["ip"], farm, cid2)
    finally:
        run_ok(farm, "rm", "-f", cid2)


def _free_or(ip, farm, cid2) -> set:
    """The lowest free address is leased: with nothing else running, that is ``ip``."""
    taken = {a for a, who in _leases(farm).items() if who != cid2}
    net = _net(farm)
    lowest = next(str(a) for a in net.ip_network.hosts()
                  if str(a) != net.gateway and str(a) not in taken)
    return {lowest, ip}


def test_exit_on_its_own_releases_veth_and_address(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "1").strip()
    info = json.loads((farm.root / "containers" / cid / "state.json").read_text())["net"]
    wait_until(lambda: info["ip"] not in _leases(farm), "the address to be released", 60)
    wait_until(lambda: not os.path.exists(f"/sys/class/net/{info['host_if']}"), "the veth to go")
    run_ok(farm, "rm", cid)


def test_restart_gets_an_address_again(farm):
    cid = run_ok(farm, "run", "-d", "busybox", "sleep", "600").strip()
    try:
        run_ok(farm, "restart", "-t", "0", cid)
        info = _inspect(farm, cid)["network"]
        assert _leases(farm).get(info["ip"]) == cid
        out = run_ok(farm, "exec", cid, "ip", "-o", "-4", "addr", "show", "eth0")
        assert info["ip"] in out
    finally:
        run_ok(farm, "rm", "-f", cid)


def test_unknown_network_is_a_clear_error_and_leaves_nothing(farm):
    before = set(os.listdir(farm.root / "containers"))
    r = farm.cli("run", "--rm", "--network", "no-such-net", "busybox", "true")
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "network 'no-such-net' not found" in err and "Traceback" not in err
    assert set(os.listdir(farm.root / "containers")) == before

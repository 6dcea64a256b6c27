"""Port maps (Issue 10 item 2): -p/-P, ranges, udp, `minibox port`, ps PORTS; reachable on
the host's addresses and 127.0.0.1, from other containers (hairpin) and from outside the host
(a network namespace the test makes); only traffic addressed to the host is redirected; the
host's loopback stays closed to containers (CVE-2020-8558); rules gone after rm and exit,
resynced when the runtime worker restarts."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import struct
import subprocess

import pytest

from minibox.config import Settings
from minibox.net import netns
from minibox.net.network import default_network
from tests.netkit import wait_until
from tests.runtime.conftest import run_ok
from tests.runtime.farm import free_port
from tests.runtime.images import import_busybox

HTTPD = ("sh", "-c", "mkdir -p /www && echo $MSG > /www/index.html && httpd -f -p 80 -h /www")


def _net(farm):
    return default_network(Settings.from_env(farm.env))


def _get(host: str, port: int, timeout: float = 3) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET /index.html HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def _reachable(host: str, port: int) -> bool:
    try:
        return "200" in _get(host, port, 1).split("\r\n", 1)[0]
    except OSError:
        return False


def _info(farm, name) -> dict:
    out = json.loads(run_ok(farm, "inspect", name))
    return (out[0] if isinstance(out, list) else out)["network"]


def _nat_rules(farm) -> list[str]:
    prefix = farm.env["MINIBOX_NET_CHAIN_PREFIX"]
    out = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True,
                         check=True).stdout
    return [ln for ln in out.splitlines() if prefix in ln]


@contextlib.contextmanager
def web(farm, *args, msg="hello"):
    name = f"web-{secrets.token_hex(3)}"
    run_ok(farm, "run", "-d", "--name", name, "-e", f"MSG={msg}", *args, "busybox", *HTTPD)
    try:
        info = _info(farm, name)
        wait_until(lambda: _reachable(info["ip"], 80), "the container's httpd")
        yield name, info
    finally:
        run_ok(farm, "rm", "-f", name)


def _host_address() -> str:
    """An address of this host that is not loopback (talking to it stays on the host)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for ln in out.splitlines():
        addr = ln.split()[3].split("/")[0]
        if not addr.startswith("127."):
            return addr
    pytest.skip("no global IPv4 address on this host")


def test_map_reachable_on_loopback_host_addresses_and_listed(farm):
    hp = free_port()
    with web(farm, "-p", f"{hp}:80", msg="mapped") as (name, info):
        assert "mapped" in _get("127.0.0.1", hp)
        assert "mapped" in _get(_host_address(), hp)
        assert "mapped" in _get(_net(farm).gateway, hp)
        assert run_ok(farm, "port", name).strip() == f"80/tcp -> 0.0.0.0:{hp}"
        assert run_ok(farm, "port", name, "80").strip() == f"0.0.0.0:{hp}"
        ps = run_ok(farm, "ps")
        assert f"0.0.0.0:{hp}->80/tcp" in ps and "PORTS" in ps
    assert not any(f"--dport {hp} " in r for r in _nat_rules(farm))      # gone with rm


def test_map_on_127_0_0_1_only(farm):
    hp = free_port()
    with web(farm, "-p", f"127.0.0.1:{hp}:80", msg="local"):
        assert "local" in _get("127.0.0.1", hp)
        assert not _reachable(_host_address(), hp)


def test_hairpin_from_another_container(farm):
    hp = free_port()
    with web(farm, "-p", f"{hp}:80", msg="hairpin"):
        out = run_ok(farm, "run", "--rm", "busybox", "wget", "-q", "-O", "-",
                     f"http://{_host_address()}:{hp}/index.html")
        assert "hairpin" in out
        out = run_ok(farm, "run", "--rm", "busybox", "wget", "-q", "-O", "-",
                     f"http://{_net(farm).gateway}:{hp}/index.html")
        assert "hairpin" in out


def test_outbound_to_another_address_on_the_same_port_is_not_redirected(farm):
    hp = free_port()
    with web(farm, "-p", f"{hp}:80", msg="the-mapped-one"), \
            contextlib.ExitStack() as stack:
        other = f"other-{secrets.token_hex(3)}"
        run_ok(farm, "run", "-d", "--name", other, "busybox", "sh", "-c",
               f"mkdir -p /www && echo the-other-one > /www/index.html && "
               f"httpd -f -p {hp} -h /www")
        stack.callback(run_ok, farm, "rm", "-f", other)
        ip = _info(farm, other)["ip"]
        wait_until(lambda: _reachable(ip, hp), "the other httpd")
        out = run_ok(farm, "run", "--rm", "busybox", "wget", "-q", "-O", "-",
                     f"http://{ip}:{hp}/index.html")
        assert "the-other-one" in out and "the-mapped-one" not in out


@contextlib.contextmanager
def outside_host():
    """A network namespace plugged into the host by a veth pair of its own (another machine,
    as far as the host's routing goes): yields (ns fd, the host side's address)."""
    tag = secrets.token_hex(3)
    host_if, peer = f"mbto{tag}", f"mbtp{tag}"
    from tests import netkit
    subnet = netkit.free_subnets(1, f"outside-{tag}")[0]
    base = subnet.rsplit(".", 1)[0]
    fd = netns.create()
    try:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": peer, "net_ns_fd": fd})
        subprocess.run(["ip", "addr", "add", f"{base}.1/30", "dev", host_if], check=True)
        subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
        with netns.inside(fd):
            for cmd in (["ip", "addr", "add", f"{base}.2/30", "dev", peer],
                        ["ip", "link", "set", peer, "up"], ["ip", "link", "set", "lo", "up"],
                        ["ip", "route", "add", "default", "via", f"{base}.1"]):
                subprocess.run(cmd, check=True)
        yield fd, f"{base}.1"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        os.close(fd)


def test_reachable_from_outside_the_host(farm):
    hp = free_port()
    with web(farm, "-p", f"{hp}:80", msg="from-outside"), outside_host() as (fd, host_ip):
        with netns.inside(fd):
            got = _get(host_ip, hp)
        assert "from-outside" in got


def test_ranges_udp_and_publish_all(farm):
    import_busybox(farm.root, "bb-ports", ExposedPorts={"80/tcp": {}, "53/udp": {}})
    a, b = free_port(), free_port()
    while abs(a - b) < 2:
        b = free_port()
    name = f"multi-{secrets.token_hex(3)}"
    run_ok(farm, "run", "-d", "--name", name, "-p", f"{a}-{a + 1}:7000-7001",
           "-p", f"127.0.0.1:{b}:5353/udp", "-P", "bb-ports", "sleep", "600")
    try:
        lines = sorted(run_ok(farm, "port", name).splitlines())
        assert f"7000/tcp -> 0.0.0.0:{a}" in lines and f"7001/tcp -> 0.0.0.0:{a + 1}" in lines
        assert f"5353/udp -> 127.0.0.1:{b}" in lines
        assert any(ln.startswith("80/tcp -> 0.0.0.0:") for ln in lines)
        assert any(ln.startswith("53/udp -> 0.0.0.0:") for ln in lines)
        # udp goes through: a datagram sent to the host port arrives in the container
        ip = _info(farm, name)["ip"]
        cid_pid = json.loads(run_ok(farm, "inspect", name))[0]["state"]["pid"]
        ns = os.open(f"/proc/{cid_pid}/ns/net", os.O_RDONLY)
        try:
            with netns.inside(ns):
                r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            r.bind((ip, 5353))
            r.settimeout(5)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"udp-hello", ("127.0.0.1", b))
            assert r.recvfrom(100)[0] == b"udp-hello"
            r.close()
        finally:
            os.close(ns)
    finally:
        run_ok(farm, "rm", "-f", name)


def test_host_port_in_use_is_refused_before_the_start(farm):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        hp = taken.getsockname()[1]
        leases = farm.root / "net" / "ipam" / "bridge.json"
        before = (sorted(os.listdir(farm.root / "containers")), _nat_rules(farm),
                  leases.read_text() if leases.exists() else "{}")
        r = farm.cli("run", "-d", "-p", f"{hp}:80", "busybox", "sleep", "60")
        assert r.returncode != 0
        err = r.stderr.decode()
        assert f"host port {hp}/tcp" in err and "in use" in err and "Traceback" not in err
        after = (sorted(os.listdir(farm.root / "containers")), _nat_rules(farm),
                 leases.read_text() if leases.exists() else "{}")
        assert after == before


@pytest.mark.parametrize("spec,message", [
    ("notaport", "invalid port mapping 'notaport'"),
    ("8080:70000", "container port '70000' is not a number from 1 to 65535"),
    ("8080:80/sctp", "unknown protocol 'sctp'"),
    ("9000-9001:80-85", "the host range has 2 ports, the container range 6"),
    ("1.2.3:80:80", "invalid port mapping"),
])
def test_invalid_port_specs(farm, spec, message):
    r = farm.cli("run", "--rm", "-p", spec, "busybox", "true")
    assert r.returncode != 0
    assert message in r.stderr.decode() and b"Traceback" not in r.stderr


def test_map_with_network_none_is_refused(farm):
    r = farm.cli("run", "--rm", "--network", "none", "-p", "8080:80", "busybox", "true")
    assert r.returncode != 0 and b"need a bridge network" in r.stderr


def test_rules_are_gone_after_the_container_exits(farm):
    hp = free_port()
    cid = run_ok(farm, "run", "-d", "-p", f"{hp}:80", "busybox", "sleep", "1").strip()
    try:
        wait_until(lambda: not any(f"--dport {hp} " in r for r in _nat_rules(farm)),
              "the rules to go", 60)
        with socket.socket() as s:               # and the host port is free again
            s.bind(("0.0.0.0", hp))
    finally:
        run_ok(farm, "rm", "-f", cid)


def _frame(src_mac: bytes, dst_mac: bytes, src: str, dst: str, dport: int,
           payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + udp


def test_containers_cannot_reach_the_hosts_loopback_cve_2020_8558(farm):
    """A hand-made packet to 127.0.0.1 sent from a container's netns to the bridge (which
    has route_localnet for 127.0.0.1 maps) must be dropped; the same packet to the gateway
    address arrives (the control)."""
    net = _net(farm)
    with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"
    run_ok(farm, "run", "-d", "--name", "cve", "busybox", "sleep", "600")
    lo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        lo.bind(("127.0.0.1", 0))
        gw.bind((net.gateway, 0))
        for s in (lo, gw):
            s.settimeout(2)
        info = _info(farm, "cve")
        pid = json.loads(run_ok(farm, "inspect", "cve"))[0]["state"]["pid"]
        bridge_mac = bytes.fromhex(open(f"/sys/class/net/{net.bridge}/address").read()
                                   .strip().replace(":", ""))
        ns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            with netns.inside(ns):
                raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                raw.bind(("eth0", 0))
                mac = raw.getsockname()[4]
                for dst, sock in (("127.0.0.1", lo), (net.gateway, gw)):
                    raw.send(_frame(mac, bridge_mac, info["ip"], dst, sock.getsockname()[1],
                                    b"cve-probe"))
                raw.close()
        finally:
            os.close(ns)
        assert gw.recvfrom(100)[0] == b"cve-probe"          # the control arrived
        with pytest.raises(socket.timeout):
            lo.recvfrom(100)
    finally:
        lo.close()
        gw.close()
        run_ok(farm, "rm", "-f", "cve")

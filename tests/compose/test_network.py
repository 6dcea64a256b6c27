"""A compose project on its own bridge network (real bridge, veths, netns and iptables
rules): a busybox httpd web service, a client that fetches from it by service name, and a
healthchecked service the web service waits for.  Reached from the host on 127.0.0.1 and
on the bridge address; after `down -v` no container, veth, rule, mount, cgroup or lease
of the project remains.  Traffic goes only to loopback and to the project's own bridge."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.farmkit import free_port


def _fetch(url: str, timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


WEB = """\
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 600"]
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready"]
      interval: 0.2s
      retries: 50
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["{port}:80"]
    depends_on:
      db: {{condition: service_healthy}}
  client:
    image: busybox
    command: ["sh", "-c", "until wget -q -O- http://web/; do nslookup web; sleep 1; done; exec sleep 600"]
    depends_on: [web]
"""


def _leftovers(farm, ids: list[str], nets: list[dict], bridge: str) -> list[str]:
    """What the project's containers and network left on the host: containers, veths
    (host side), the bridge, iptables rules naming an address or the bridge, mounts,
    cgroups, IPAM leases."""
    out = []
    names = os.listdir("/sys/class/net")
    out += [f"link {n}" for n in names if n == bridge or any(n == x["host_if"] for x in nets)]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    out += [f"rule {ln}" for ln in rules.splitlines()
            if bridge in ln or any(f"{x['ip']}/" in ln or f"{x['ip']}:" in ln for x in nets)]
    mounts = Path("/proc/self/mountinfo").read_text()
    out += [f"mount of {c}" for c in ids if c in mounts]
    out += [f"cgroup {d}" for c in ids for d in Path("/sys/fs/cgroup").glob(f"*/*/{c}*")]
    out += [f"container {c}" for c in ids if (farm.root / "containers" / c).exists()]
    ipam = farm.root / "net" / "ipam"
    for f in ipam.glob("*.json") if ipam.is_dir() else []:
        text = f.read_text()
        out += [f"lease in {f.name}" for c in ids if c in text]
    return out


def test_project_network_names_ports_and_cleanup(project):
    port = free_port()
    p = project.write(WEB.format(port=port))
    r = p.run("up", "-d")
    assert r.returncode == 0, r.stderr
    cs = p.containers()
    db, web, client = (cs[f"{p.name}-{s}-1"] for s in ("db", "web", "client"))
    assert web["state"]["started_at"] >= db["state"]["started_at"] + 1     # after healthy
    assert client["state"]["started_at"] >= web["state"]["started_at"]
    with p.farm.http() as h:
        net = h.get(f"/networks/{p.name}_default").json()
    assert web["network"]["name"] == f"{p.name}_default"
    # from the host: on 127.0.0.1 and on the bridge address (the network's gateway)
    assert _fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"
    assert _fetch(f"http://{net['gateway']}:{port}/").strip() == "hello-from-web"
    end = time.monotonic() + 60
    while "hello-from-web" not in p.ok("logs", "client"):     # the client found `web`
        assert time.monotonic() < end, p.ok("logs")
        time.sleep(0.3)
    # every service resolves every other by its service name
    out = p.ok("exec", "-T", "client", "sh", "-c", "nslookup db; nslookup web")
    assert db["network"]["ip"] in out and web["network"]["ip"] in out
    ids = [c["id"] for c in cs.values()]
    nets = [c["network"] for c in cs.values() if c.get("network")]
    assert len(nets) == 3
    up = _leftovers(p.farm, ids, nets, net["bridge"])     # while up, the probe sees them all
    assert {x.split()[0] for x in up} >= {"link", "rule", "cgroup", "container", "lease"}, up
    p.ok("down", "-v", "-t", "1")
    assert p.containers() == {}
    assert _leftovers(p.farm, ids, nets, net["bridge"]) == []
    with p.farm.http() as h:
        assert h.get(f"/networks/{p.name}_default").status_code == 404


NETWORKS = """\
services:
  proxy:
    image: busybox
    command: ["sleep", "600"]
    networks:
      front:
      back: {{aliases: [gate]}}
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo page-of-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    networks: [front]
  db:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo page-of-db > /www/index.html && exec httpd -f -p 80 -h /www"]
    networks:
      back:
        aliases: [database]
networks:
  front: {{driver: bridge}}
  back:
    ipam:
      config:
        - subnet: {subnet}
"""


def _bound_udp(address: str, port: int) -> bool:
    from minibox.net.registry import udp_bound
    return address in udp_bound(port)


def test_service_networks_isolate_and_resolve_by_name_and_alias(project):
    """proxy is on front and back; web only on front; db only on back (its own subnet):
    proxy reaches both by service name and alias, web and db neither resolve nor reach
    each other.  After `down -v` no veth (eth0's or eth1's), lease or network is left."""
    import ipaddress
    from tests.netkit import free_subnets

    subnet = free_subnets(1, f"{project.name}-{os.getpid()}-{time.time()}")[0]
    p = project.write(NETWORKS.format(subnet=subnet))
    p.ok("up", "-d")
    cs = p.containers()
    proxy, web, db = (cs[f"{p.name}-{s}-1"] for s in ("proxy", "web", "db"))
    assert web["network"]["name"] == f"{p.name}_front"
    assert db["network"]["name"] == f"{p.name}_back"
    assert ipaddress.IPv4Address(db["network"]["ip"]) in ipaddress.IPv4Network(subnet)
    assert proxy["network"]["name"] == f"{p.name}_front"
    (back,) = proxy["network"]["extra"]
    assert back["name"] == f"{p.name}_back"
    assert ipaddress.IPv4Address(back["ip"]) in ipaddress.IPv4Network(subnet)

    def fetch(svc: str, url: str) -> str:
        return p.ok("exec", "-T", svc, "sh", "-c",
                    f"for i in $(seq 60); do timeout 5 wget -q -O- {url} && exit 0; "
                    "sleep 0.5; done; exit 1")   # (this busybox's wget -T crashes)

    assert "page-of-web" in fetch("proxy", "http://web/")          # front, by service name
    assert "page-of-db" in fetch("proxy", "http://db/")            # back, by service name
    assert "page-of-db" in fetch("proxy", "http://database/")      # back, by alias
    out = p.ok("exec", "-T", "db", "nslookup", "gate")             # proxy's alias on back
    assert back["ip"] in out
    # no shared network: no name, and no route through the host either
    for svc, other in (("web", "db"), ("db", "web"), ("web", "database")):
        r = p.run("exec", "-T", svc, "nslookup", other)
        assert r.returncode != 0, (svc, other, r.stdout)
    for svc, other in (("web", db), ("db", web)):
        r = p.run("exec", "-T", svc, "timeout", "3", "wget", "-q", "-O-",
                  f"http://{other['network']['ip']}/")
        assert r.returncode != 0 and "page-of" not in r.stdout, (svc, r.stdout)

    with p.farm.http() as h:
        nets = {n: h.get(f"/networks/{p.name}_{n}").json() for n in ("front", "back")}
    assert nets["back"]["subnet"] == subnet
    ids = [c["id"] for c in cs.values()]
    ends = [c["network"] for c in cs.values()] + [back]
    assert all(_bound_udp(n["gateway"], 53) for n in nets.values())   # their resolvers
    p.ok("down", "-v", "-t", "1")
    for n in nets.values():
        assert _leftovers(p.farm, ids, ends, n["bridge"]) == []
        assert not _bound_udp(n["gateway"], 53)      # the address is free for the next one
    with p.farm.http() as h:
        assert h.get(f"/networks/{p.name}_back").status_code == 404


def test_a_changed_subnet_asks_for_down_first(project):
    from tests.netkit import free_subnets

    a, b = free_subnets(2, f"{project.name}-{os.getpid()}-{time.time()}")
    p = project.write(NETWORKS.format(subnet=a))
    p.ok("up", "-d", "db")
    p.write(NETWORKS.format(subnet=b))
    r = p.run("up", "-d", "db")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"exists with subnet {a}, but the file asks for {b} (minibox-compose.yaml:" \
        in r.stderr, r.stderr
    assert "compose down" in r.stderr

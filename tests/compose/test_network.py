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

"""A compose project on its own bridge network (real bridge, veths, netns and iptables
rules): a busybox httpd web service, a client that fetches from it by service name, and a
healthchecked service the web service waits for.  Reached from the host on 127.0.0.1 and
on the bridge address; after `down -v` no container, veth, rule, mount, cgroup or lease
of the project remains.  Traffic goes only to loopback and to the project's own bridge."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from tests.farmkit import free_port


def _networks_supported(farm) -> bool:
    with farm.http() as h:
        return h.get("/networks").status_code == 200


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
    command: ["sh", "-c", "until wget -q -O- http://web/; do sleep 0.2; done; exec sleep 600"]
    depends_on: [web]
"""


def _host_state(farm, project: str) -> dict:
    links = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {"links": json.loads(links), "rules": rules}


def test_project_network_names_ports_and_cleanup(project):
    if not _networks_supported(project.farm):
        pytest.skip("this daemon has no bridge networking (/networks) yet")
    port = free_port()
    p = project.write(WEB.format(port=port))
    r = p.run("up", "-d")
    assert r.returncode == 0, r.stderr
    cs = p.containers()
    db, web, client = (cs[f"{p.name}-{s}-1"] for s in ("db", "web", "client"))
    assert web["state"]["started_at"] >= db["state"]["started_at"] + 1     # after healthy
    assert client["state"]["started_at"] >= web["state"]["started_at"]
    assert _fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"
    with p.farm.http() as h:
        net = h.get(f"/networks/{p.name}_default").json()
    gateway = net.get("gateway") or net["subnet"].split("/")[0].rsplit(".", 1)[0] + ".1"
    assert _fetch(f"http://{gateway}:{port}/").strip() == "hello-from-web"
    end = time.monotonic() + 60
    while "hello-from-web" not in p.ok("logs", "client"):     # the client found `web`
        assert time.monotonic() < end, p.ok("logs")
        time.sleep(0.3)
    bridge = net.get("bridge")
    p.ok("down", "-v", "-t", "1")
    assert p.containers() == {}
    state = _host_state(p.farm, p.name)
    if bridge:
        assert not [ln for ln in state["links"] if ln.get("master") == bridge
                    or ln.get("ifname") == bridge]
    assert str(port) not in state["rules"]
    with p.farm.http() as h:
        assert h.get(f"/networks/{p.name}_default").status_code == 404

"""User-defined networks (Issue 10 item 3): create/ls/inspect/rm, their own bridge and subnet,
an overlap with a host route refused, containers on one reach each other by name and
--network-alias (kept current as containers come and go), isolated from other networks."""

from __future__ import annotations

import json
import os
import secrets

import pytest

from minibox.net.network import host_routes
from tests import netkit
from tests.netkit import wait_until
from tests.runtime.conftest import run_ok

WEB = "mkdir -p /www && echo $MSG > /www/index.html && httpd -f -p 80 -h /www"


@pytest.fixture
def network(farm):
    name = f"net{secrets.token_hex(3)}"
    subnet = netkit.free_subnets(1, f"{farm.root}-{name}")[0]
    run_ok(farm, "network", "create", "--subnet", subnet, name)
    try:
        yield name, subnet
    finally:
        for cid in farm.container_ids():
            cfg = json.loads((farm.root / "containers" / cid / "config.json").read_text())
            if cfg["spec"]["network"] == name:
                farm.cli("rm", "-f", cid)
        farm.cli("network", "rm", "-f", name)


def _resolves(farm, net: str, name: str) -> str:
    r = farm.cli("run", "--rm", "--network", net, "busybox", "nslookup", name)
    return r.stdout.decode() if r.returncode == 0 else ""


def test_create_ls_inspect_rm(farm, network):
    name, subnet = network
    info = json.loads(run_ok(farm, "network", "inspect", name))[0]
    assert info["subnet"] == subnet and info["gateway"] == subnet.replace(".0/24", ".1")
    assert os.path.exists(f"/sys/class/net/{info['bridge']}")
    assert name in run_ok(farm, "network", "ls")
    assert "bridge" in run_ok(farm, "network", "ls", "-q").split()
    cid = run_ok(farm, "run", "-d", "--network", name, "busybox", "sleep", "600").strip()
    r = farm.cli("network", "rm", name)
    assert r.returncode != 0 and b"in use" in r.stderr
    run_ok(farm, "rm", "-f", cid)
    run_ok(farm, "network", "rm", name)
    assert not os.path.exists(f"/sys/class/net/{info['bridge']}")
    r = farm.cli("network", "inspect", name)
    assert r.returncode != 0 and f"network '{name}' not found".encode() in r.stderr


def test_containers_reach_each_other_by_name_and_alias(farm, network):
    net, _ = network
    run_ok(farm, "run", "-d", "--network", net, "--name", f"{net}-web", "--network-alias",
           "db", "-e", "MSG=by-name", "busybox", "sh", "-c", WEB)
    wait_until(lambda: "by-name" in farm.cli(
        "run", "--rm", "--network", net, "busybox", "wget", "-q", "-O", "-",
        f"http://{net}-web/index.html").stdout.decode(), "the web container by name", 60)
    out = run_ok(farm, "run", "--rm", "--network", net, "busybox", "wget", "-q", "-O", "-",
                 "http://db/index.html")
    assert "by-name" in out


def test_names_are_kept_current(farm, network):
    net, _ = network
    a = f"{net}-a"
    cid = run_ok(farm, "run", "-d", "--network", net, "--name", a, "busybox",
                 "sleep", "600").strip()
    ip = json.loads(run_ok(farm, "inspect", a))[0]["network"]["ip"]
    assert ip in _resolves(farm, net, a)
    run_ok(farm, "rm", "-f", cid)
    assert _resolves(farm, net, a) == ""                    # gone at once
    run_ok(farm, "run", "-d", "--network", net, "--name", a, "busybox", "sleep", "600")
    ip2 = json.loads(run_ok(farm, "inspect", a))[0]["network"]["ip"]
    assert ip2 in _resolves(farm, net, a)                   # back at once


def test_networks_are_isolated_from_each_other(farm, network):
    net, _ = network
    run_ok(farm, "run", "-d", "--name", f"{net}-other", "-e", "MSG=x", "busybox", "sh", "-c",
           WEB)
    try:
        ip = json.loads(run_ok(farm, "inspect", f"{net}-other"))[0]["network"]["ip"]
        r = farm.cli("run", "--rm", "--network", net, "busybox", "sh", "-c",
                     f"nc -w 2 {ip} 80 </dev/null && echo REACHED || echo blocked")
        assert b"blocked" in r.stdout, r.stdout
    finally:
        farm.cli("rm", "-f", f"{net}-other")


def test_subnet_overlapping_a_host_route_is_refused(farm):
    dev, route = host_routes()[0]
    r = farm.cli("network", "create", "--subnet", str(route), f"ovl{secrets.token_hex(2)}")
    assert r.returncode != 0
    err = r.stderr.decode()
    assert f"overlaps the host's route {route} on {dev}" in err and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (("--subnet", "10.1.2.3/33", "badsub"), "invalid subnet"),
    (("--subnet", "10.1.2.1/24", "notnet"), "has host bits set"),
    (("bridge",), "reserved"),
    (("bad name!",), "invalid network name"),
])
def test_bad_network_input(farm, args, message):
    r = farm.cli("network", "create", *args)
    assert r.returncode != 0
    assert message in r.stderr.decode() and b"Traceback" not in r.stderr


def test_alias_needs_a_user_defined_network(farm):
    r = farm.cli("run", "--rm", "--network-alias", "x", "busybox", "true")
    assert r.returncode != 0 and b"needs a user-defined network" in r.stderr

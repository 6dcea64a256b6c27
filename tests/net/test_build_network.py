"""Build steps run in a network namespace of their own on the build network (Issue 8 item 1):
nothing listening on the host's loopback is reachable from a RUN step, while outbound traffic
(PKG, AUTO-DEPS) still leaves through the build bridge.  `--network none` and `host` too."""

from __future__ import annotations

import ipaddress
import shutil

from minibox.config import Settings
from tests.farmkit import write_ctx
from tests.net.conftest import http_server, wait_for_address


def _settings(farm) -> Settings:
    return Settings.from_env(farm.env)


def _probe_ctx(ctx, netprobe, run_lines: list[str]) -> None:
    shutil.copy(netprobe, ctx / "netprobe")
    body = "\n".join(f"    RUN {line}" for line in run_lines)
    write_ctx(ctx, {"MiniBox": f"BASE busybox\nBLOCK probe\n    COPY netprobe /bin/netprobe\n"
                               f"{body}\n"})


def test_run_steps_cannot_reach_the_hosts_loopback_but_reach_the_build_gateway(
        farm, ctx, tmp_path, netprobe, loopback_tcp, abstract_unix):
    s = _settings(farm)
    gateway = str(ipaddress.IPv4Network(s.build_subnet).network_address + 1)
    wait_for_address(gateway)
    index = tmp_path / "index"
    index.mkdir()
    (index / "Packages").write_text("Package: minibox-test\n")
    with http_server(gateway, index) as http_port:
        _probe_ctx(ctx, netprobe, [
            f"echo daemon: $(netprobe tcp 127.0.0.1 {farm.port})",
            f"echo tcp: $(netprobe tcp 127.0.0.1 {loopback_tcp.name})",
            f"echo abstract: $(netprobe abstract {abstract_unix.name})",
            f"wget -q -O /Packages http://{gateway}:{http_port}/Packages && cat /Packages",
        ])
        r = farm.build(ctx, "netprobe", "--no-cache")
    out = r.stdout + r.stderr
    assert "daemon: refused 111" in out, out
    assert "tcp: refused 111" in out, out
    assert "abstract: refused 111" in out, out
    assert "Package: minibox-test" in out, out
    assert loopback_tcp.accepted() == 0
    assert abstract_unix.accepted() == 0


def test_network_none_has_only_loopback(farm, ctx, netprobe, loopback_tcp):
    _probe_ctx(ctx, netprobe, [
        "echo ifaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)",
        f"echo tcp: $(netprobe tcp 127.0.0.1 {loopback_tcp.name})",
    ])
    r = farm.build(ctx, "netnone", "--no-cache", "--network", "none")
    out = r.stdout + r.stderr
    assert "ifaces: lo," in out, out
    assert "tcp: refused 111" in out, out


def test_build_network_has_eth0_and_a_default_route(farm, ctx, netprobe):
    _probe_ctx(ctx, netprobe, [
        "echo ifaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)",
        "echo routes: $(grep -c '^eth0\t00000000' /proc/net/route)",
    ])
    r = farm.build(ctx, "netbuild", "--no-cache")
    out = r.stdout + r.stderr
    assert "ifaces: eth0,lo," in out, out
    assert "routes: 1" in out, out


def test_network_host_is_an_explicit_opt_in(farm, ctx, netprobe, loopback_tcp):
    _probe_ctx(ctx, netprobe, [f"echo tcp: $(netprobe tcp 127.0.0.1 {loopback_tcp.name})"])
    r = farm.build(ctx, "nethost", "--no-cache", "--network", "host")
    assert "tcp: connected" in r.stdout + r.stderr
    assert loopback_tcp.accepted() == 1


def test_unknown_network_is_refused_before_anything_runs(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    RUN true\n"})
    r = farm.build(ctx, "netbad", "--network", "bridge", check=False)
    assert r.returncode != 0
    assert "bridge" in r.stderr and "Traceback" not in r.stderr
    with farm.http() as c:
        resp = c.post("/builds/path", json={"tag": "x", "context": str(ctx),
                                            "network": "everywhere"})
    assert resp.status_code == 422, resp.text     # a bad field, before anything is queued
    assert "'network'" in resp.text and "'build', 'none' or 'host'" in resp.text

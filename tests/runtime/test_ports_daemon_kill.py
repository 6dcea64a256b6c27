"""Port maps across a killed miniboxd (issue 10): the whole daemon (its embedded Redis and
workers, as users run it) is killed with SIGKILL and started again.

- Only the daemon dies: the containers keep running and their maps keep answering, the
  new daemon adopts the workers, and MiniBox's chains hold each rule exactly once.
- Everything dies (daemon, Redis, workers): a container with ``--restart always`` that
  died meanwhile is restarted with its map; a container that no longer exists at all
  (its state gone in the crash) loses its rules, address and veth at the next start.
- After ``rm`` nothing is left: no rule in MiniBox's chains, no veth, no IPAM lease.

Traffic goes only to 127.0.0.1 and to the farm's own bridge."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess

import pytest

from tests.farmkit import Farm, daemon_procs, free_port
from tests.netkit import wait_until
from tests.runtime.images import import_busybox

if os.geteuid() != 0:
    pytest.skip("the runtime tests need root", allow_module_level=True)

HTTPD = ("sh", "-c", "mkdir -p /www && echo $MSG > /www/index.html && exec httpd -f -p 80 -h /www")


@pytest.fixture
def farm():
    f = Farm(concurrency=1)
    try:
        import_busybox(f.root, "busybox")
        yield f.start()
    finally:
        _kill_containers(f)
        _kill_farm(f)
        f.destroy()


def _kill_containers(farm: Farm) -> None:
    from tests.runtime.farm import kill_containers
    kill_containers(farm.root)


def _farm_pids(farm: Farm) -> list[int]:
    """The daemon's redis-server and worker processes."""
    redis, workers = daemon_procs(farm.root)
    return redis + workers


def _kill_daemon(farm: Farm) -> None:
    farm.proc.send_signal(signal.SIGKILL)
    farm.proc.wait()


def _kill_farm(farm: Farm) -> None:
    """A crash of everything the daemon runs (by pid: only this farm's processes)."""
    if farm.proc and farm.proc.poll() is None:
        _kill_daemon(farm)
    for pid in _farm_pids(farm):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not _farm_pids(farm), "the farm's processes to end")


def _cli(farm: Farm, *args) -> str:
    r = farm.cli(*args, timeout=120)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def _inspect(farm: Farm, name: str) -> dict:
    out = json.loads(_cli(farm, "inspect", name))
    return out[0] if isinstance(out, list) else out


def _get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def _answers(port: int, msg: str) -> bool:
    try:
        return msg in _get(port)
    except OSError:
        return False


def _rules(farm: Farm) -> list[str]:
    """Every rule of this farm's chains and every jump into them (filter and nat)."""
    prefix = farm.env["MINIBOX_NET_CHAIN_PREFIX"]
    out = []
    for table in ("filter", "nat"):
        text = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True,
                              text=True, check=True).stdout
        out += [f"{table} {ln}" for ln in text.splitlines() if prefix in ln]
    return out


def _leases(farm: Farm) -> dict:
    out = {}
    for f in (farm.root / "net" / "ipam").glob("*.json"):
        out.update(json.loads(f.read_text()))
    return out


def _web(farm: Farm, name: str, port: int, *extra: str) -> dict:
    _cli(farm, "run", "-d", "--name", name, "-e", f"MSG=hello-{name}", "-p", f"{port}:80",
         *extra, "busybox", *HTTPD)
    wait_until(lambda: _answers(port, f"hello-{name}"), f"{name}'s port map", 60)
    return _inspect(farm, name)


def _assert_gone(farm: Farm, net: dict, port: int, cid: str) -> None:
    rules = _rules(farm)
    assert not [r for r in rules if f"--dport {port} " in r or f"{net['ip']}:" in r], rules
    assert not os.path.exists(f"/sys/class/net/{net['host_if']}")
    assert cid not in _leases(farm).values()


def _no_duplicates(rules: list[str]) -> None:
    dups = sorted({r for r in rules if rules.count(r) > 1})
    assert not dups, dups


def test_port_map_survives_a_sigkilled_daemon_without_duplicate_rules(farm):
    port = free_port()
    info = _web(farm, "web", port)
    before = _rules(farm)
    _no_duplicates(before)
    assert sum(f"--dport {port} " in r for r in before) == 1, before

    _kill_daemon(farm)
    assert _answers(port, "hello-web")              # the map does not need the daemon
    farm.start()                                     # adopts Redis and the workers
    assert _answers(port, "hello-web")
    st = _inspect(farm, "web")["state"]
    assert st["status"] == "running" and st["pid"] == info["state"]["pid"]
    after = _rules(farm)
    _no_duplicates(after)
    assert sorted(after) == sorted(before)
    assert f"{port}->80/tcp" in _cli(farm, "ps")

    _kill_daemon(farm)                               # and once more
    farm.start()
    assert sorted(_rules(farm)) == sorted(before)
    assert _answers(port, "hello-web")

    _cli(farm, "rm", "-f", "web")
    _assert_gone(farm, info["network"], port, info["id"])
    assert not _answers(port, "hello-web")


def test_crash_of_everything_restarts_by_policy_and_drops_what_is_gone(farm):
    keep_port, again_port, gone_port = free_port(), free_port(), free_port()
    keep = _web(farm, "keep", keep_port)
    again = _web(farm, "again", again_port, "--restart", "always")
    gone = _web(farm, "gone", gone_port)
    before = _rules(farm)

    _kill_farm(farm)                                 # daemon, Redis, workers: all SIGKILLed
    os.kill(again["state"]["pid"], signal.SIGKILL)   # dies while nothing watches it
    os.kill(gone["state"]["pid"], signal.SIGKILL)    # and this one disappears entirely
    wait_until(lambda: not os.path.exists(f"/sys/class/net/{gone['network']['host_if']}"),
               "the dead container's veth")
    (farm.root / "containers" / ".names" / "gone").unlink(missing_ok=True)
    shutil.rmtree(farm.root / "containers" / gone["id"])
    assert any(f"--dport {gone_port} " in r for r in _rules(farm))     # stale, for now

    farm.start()                                     # a new Redis, new workers
    assert _answers(keep_port, "hello-keep")
    assert _inspect(farm, "keep")["state"]["pid"] == keep["state"]["pid"]
    wait_until(lambda: _answers(again_port, "hello-again"), "the restarted container", 60)
    st = _inspect(farm, "again")["state"]
    assert st["pid"] != again["state"]["pid"] and st["status"] == "running"

    rules = _rules(farm)
    _no_duplicates(rules)
    for port in (keep_port, again_port):
        assert sum(f"--dport {port} " in r for r in rules) == 1, rules
    _assert_gone(farm, gone["network"], gone_port, gone["id"])
    assert len(rules) == len(before) - 1, (before, rules)

    _cli(farm, "rm", "-f", "keep", "again")
    for c, port in ((keep, keep_port), (again, again_port)):
        _assert_gone(farm, c["network"], port, c["id"])
    assert not [r for r in _rules(farm) if "-j DNAT" in r]
    assert not [o for o in _leases(farm).values() if not o.startswith("build:")]

"""MiniBox's own chains: rendered from state, applied atomically, idempotent, per instance."""

from __future__ import annotations

import subprocess

import pytest

from minibox.config import Settings
from minibox.net import iptables
from minibox.net.network import Network
from tests import netkit


@pytest.fixture
def rules(tmp_path):
    env = netkit.net_env(str(tmp_path))
    s = Settings.from_env({**env, "MINIBOX_DATA_ROOT": str(tmp_path)})
    r = iptables.Rules(s)
    try:
        yield r, s
    finally:
        r.remove_all()


def dump(table: str) -> list[str]:
    return subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True,
                          text=True, check=True).stdout.splitlines()


def mine(prefix: str, table: str) -> list[str]:
    return [ln for ln in dump(table) if prefix in ln]


def test_sections_render_into_own_chains_with_one_jump_each(rules):
    r, s = rules
    net = Network("n", s.bridge, s.bridge_subnet)
    r.set("net:n", iptables.network_rules(net))
    r.set("net:n", iptables.network_rules(net))           # again: no duplicates
    r.resync()
    r.resync()
    nat = mine(s.chain_prefix, "nat")
    filt = mine(s.chain_prefix, "filter")
    assert nat.count(f"-A POSTROUTING -j {s.chain_prefix}-POSTROUTING") == 1
    assert sum(1 for ln in nat if f"-s {s.bridge_subnet} ! -o {s.bridge} -j MASQUERADE" in ln) == 1
    assert any(f"-d 127.0.0.0/8 -i {s.bridge}" in ln and "-j DROP" in ln for ln in filt), filt
    assert filt.count(f"-A INPUT -j {s.chain_prefix}-INPUT") == 1


def test_drop_and_resync_remove_what_state_no_longer_lists(rules):
    r, s = rules
    r.set("ports:abc", [("nat", "PORTS", "-p tcp --dport 18081 -j DNAT "
                                         "--to-destination 10.1.2.3:80")])
    assert any("18081" in ln for ln in mine(s.chain_prefix, "nat"))
    r.drop("ports:abc")
    assert not any("18081" in ln for ln in mine(s.chain_prefix, "nat"))


def test_two_instances_never_touch_each_others_rules(rules, tmp_path):
    r, s = rules
    other_env = netkit.net_env(str(tmp_path / "other"))
    o = iptables.Rules(Settings.from_env({**other_env,
                                          "MINIBOX_DATA_ROOT": str(tmp_path / "other")}))
    try:
        r.set("ports:x", [("nat", "PORTS", "-p tcp --dport 18082 -j DNAT "
                                           "--to-destination 10.1.2.3:80")])
        o.set("ports:y", [("nat", "PORTS", "-p tcp --dport 18083 -j DNAT "
                                           "--to-destination 10.1.2.4:80")])
        o.resync()
        o.remove_all()
        assert any("18082" in ln for ln in mine(s.chain_prefix, "nat"))
        assert not any(other_env["MINIBOX_NET_CHAIN_PREFIX"] in ln for ln in dump("nat"))
    finally:
        o.remove_all()


def test_remove_all_leaves_nothing(rules):
    r, s = rules
    r.set("net:n", iptables.network_rules(Network("n", s.bridge, s.bridge_subnet)))
    r.remove_all()
    assert mine(s.chain_prefix, "nat") == [] and mine(s.chain_prefix, "filter") == []


def test_a_jump_deleted_behind_our_back_comes_back_at_resync(rules):
    """Jumps are checked once per process and at every resync (a daemon or worker start),
    not by every change."""
    r, s = rules
    r.set("net:n", iptables.network_rules(Network("n", s.bridge, s.bridge_subnet)))
    jump = ["-j", f"{s.chain_prefix}-POSTROUTING"]
    subprocess.run(["iptables", "-w", "-t", "nat", "-D", "POSTROUTING", *jump], check=True)
    r.resync()
    assert mine(s.chain_prefix, "nat").count(f"-A POSTROUTING -j {s.chain_prefix}-POSTROUTING") == 1

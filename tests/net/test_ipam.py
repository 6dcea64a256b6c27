"""IPAM: persisted, flock-protected leases (real files, real concurrent processes)."""

from __future__ import annotations

import multiprocessing

import pytest

from minibox.errors import UserError
from minibox.net.ipam import Ipam
from minibox.net.network import Network

NET = Network("t", "mbtipam0", "10.99.0.0/29")       # 6 hosts: gateway .1, leases .2-.6


def test_lowest_free_address_is_leased_and_reused(tmp_path):
    ipam = Ipam(tmp_path, NET)
    assert ipam.allocate("a").address == "10.99.0.2"
    assert ipam.allocate("b").address == "10.99.0.3"
    assert ipam.allocate("a").address == "10.99.0.2"          # an owner keeps its lease
    ipam.release("a")
    assert ipam.allocate("c").address == "10.99.0.2"
    assert Ipam(tmp_path, NET).leases() == {"10.99.0.2": "c", "10.99.0.3": "b"}   # persisted


def test_full_subnet_is_a_clear_error(tmp_path):
    ipam = Ipam(tmp_path, NET)
    for i in range(5):
        ipam.allocate(f"c{i}")
    with pytest.raises(UserError, match=r"network 't' has no free address \(subnet "
                                        r"10.99.0.0/29, 5 in use\)"):
        ipam.allocate("one-too-many")


def test_wanted_address_checks(tmp_path):
    ipam = Ipam(tmp_path, NET)
    assert ipam.allocate("a", want="10.99.0.5").address == "10.99.0.5"
    with pytest.raises(UserError, match="already in use"):
        ipam.allocate("b", want="10.99.0.5")
    for bad in ("10.99.0.1", "10.99.0.7", "10.98.0.2"):
        with pytest.raises(UserError, match="not a free host address"):
            ipam.allocate("b", want=bad)


def _grab(args):
    root, n = args
    ipam = Ipam(root, NET_BIG)
    return [ipam.allocate(f"p{n}-{i}").address for i in range(20)]


NET_BIG = Network("big", "mbtipam1", "10.99.4.0/22")


def test_concurrent_processes_never_share_an_address(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        got = [a for part in pool.map(_grab, [(str(tmp_path), n) for n in range(4)])
               for a in part]
    assert len(got) == 80 and len(set(got)) == 80
    assert len(Ipam(tmp_path, NET_BIG).leases()) == 80


def test_prune_keeps_what_the_predicate_accepts(tmp_path):
    ipam = Ipam(tmp_path, NET)
    for o in ("keep1", "drop1", "keep2"):
        ipam.allocate(o)
    assert ipam.prune(lambda who: who.startswith("keep")) == ["10.99.0.3"]
    assert sorted(ipam.leases().values()) == ["keep1", "keep2"]

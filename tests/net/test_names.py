"""net/names.py: what a container may resolve is what its networks know, asked from any of
them; a name only on a network it is not on stays unknown to it."""

from __future__ import annotations

from minibox.net import dns
from minibox.net.names import Names


def _query(name: str) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + q + b"\x00\x01\x00\x01"


def test_lookup_by_the_askers_networks():
    n = Names()
    n.set("front", "proxy", ["proxy"], "10.1.0.2")
    n.set("back", "proxy", ["proxy", "gate"], "10.2.0.2")
    n.set("front", "web", ["web"], "10.1.0.3")
    assert n.set("back", "db", ["db", "Database"], "10.2.0.3") == 2
    assert n.lookup("front", "db", "10.1.0.2") == ["10.2.0.3"]     # proxy: both networks
    assert n.lookup("front", "DATABASE.", "10.1.0.2") == ["10.2.0.3"]
    assert n.lookup("front", "proxy", "10.1.0.3") == ["10.1.0.2"]  # its front address
    assert n.lookup("back", "proxy", "10.2.0.3") == ["10.2.0.2"]   # its back address
    assert n.lookup("front", "db", "10.1.0.3") is None             # web: front only
    assert n.lookup("back", "web", "10.2.0.3") is None             # db: back only
    assert n.lookup("back", "gate", None) == ["10.2.0.2"]
    assert n.set("back", "db", None, None) == 1
    assert n.lookup("front", "db", "10.1.0.2") is None
    n.forget("back")
    assert n.lookup("front", "gate", "10.1.0.2") is None


def test_answer_from_a_lookup():
    reply = dns.answer(_query("web"), lambda name: ["10.1.0.3"] if name == "web" else None)
    assert reply[6:8] == b"\x00\x01" and reply.endswith(bytes([10, 1, 0, 3]))
    assert dns.answer(_query("db"), lambda name: None) is None      # not ours: forwarded

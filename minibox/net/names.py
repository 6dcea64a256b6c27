"""Who answers to which name on which network: the tables the networks' resolvers
(dns.Resolver) answer from, kept by the runtime worker as containers come and go.

A container may be on several networks (compose's ``networks:``); it then has an address on
each, and its names (container name, aliases, short id) on each.  A query is answered for
the container that asks (found by its source address on the network the query arrived on):
first from that network's table, then from the tables of its other networks -- so a
container on ``front`` and ``back`` finds the services of both, while one on ``front`` only
never learns a ``back``-only name (Docker's embedded DNS does the same).
"""

from __future__ import annotations

import threading


class Names:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[str, dict[str, tuple[list[str], str]]] = {}   # net -> cid -> ..
        self._tables: dict[str, dict[str, list[str]]] = {}                 # net -> name -> ips
        self._by_ip: dict[tuple[str, str], str] = {}                       # (net, ip) -> cid

    def set(self, net: str, cid: str, names: list[str] | None, ip: str | None) -> int:
        """Add a container to ``net`` under ``names`` at ``ip`` (``ip`` None: remove it);
        how many members ``net`` has now."""
        with self._lock:
            members = self._members.setdefault(net, {})
            old = members.pop(cid, None)
            if old is not None:
                self._by_ip.pop((net, old[1]), None)
            if ip is not None:
                members[cid] = (list(names or []), ip)
                self._by_ip[(net, ip)] = cid
            table: dict[str, list[str]] = {}
            for ns, addr in members.values():
                for n in ns:
                    table.setdefault(n.lower(), []).append(addr)
            self._tables[net] = table
            return len(members)

    def forget(self, net: str) -> None:
        """A network is gone: its members and table."""
        with self._lock:
            for cid, (_names, ip) in self._members.pop(net, {}).items():
                self._by_ip.pop((net, ip), None)
            self._tables.pop(net, None)

    def lookup(self, net: str, name: str, peer: str | None = None) -> list[str] | None:
        """The addresses of ``name`` for the container at ``peer`` asking on ``net``; None
        when no network it is on knows the name."""
        key = name.lower().rstrip(".")
        with self._lock:
            nets = [net]
            cid = self._by_ip.get((net, peer)) if peer else None
            if cid is not None:
                nets += [n for n, m in self._members.items() if n != net and cid in m]
            for n in nets:
                addrs = self._tables.get(n, {}).get(key)
                if addrs:
                    return list(addrs)
        return None

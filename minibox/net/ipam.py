"""IP address leases per network, persisted under the data root and flock-protected.

``<net_dir>/ipam/<network>.json`` maps address -> owner (a container id, "build:<pid>:<n>",
...).  Every change takes an exclusive flock on ``<network>.lock`` and replaces the file
atomically, so concurrent workers never hand out one address twice.  The gateway (first host)
and the broadcast address are never leased; the lowest free address is taken, so an address
freed by ``rm`` is reused.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minibox.errors import UserError
from minibox.net.state import JsonState


@dataclass(frozen=True)
class Lease:
    address: str
    prefixlen: int
    gateway: str
    owner: str


class Ipam:
    def __init__(self, net_dir: str | os.PathLike, network):
        self.network = network
        self.state = JsonState(Path(net_dir) / "ipam", network.name)

    def _lease(self, addr: str, owner: str) -> Lease:
        return Lease(addr, self.network.prefixlen, self.network.gateway, owner)

    def allocate(self, owner: str, want: str | None = None) -> Lease:
        """A free address for ``owner`` (its existing lease if it has one)."""
        net = self.network.ip_network
        with self.state.locked():
            leases = self.state.read()
            for addr, who in leases.items():
                if who == owner:
                    return self._lease(addr, owner)
            if want is not None:
                addr = self._check_wanted(want, leases)
            else:
                taken = set(leases) | {self.network.gateway}
                addr = next((str(a) for a in net.hosts() if str(a) not in taken), None)
                if addr is None:
                    raise UserError(f"network {self.network.name!r} has no free address "
                                    f"(subnet {self.network.subnet}, {len(leases)} in use)",
                                    hint="remove containers on it, or use a network with a "
                                         "larger subnet")
            leases[addr] = owner
            self.state.write(leases)
        return self._lease(addr, owner)

    def _check_wanted(self, want: str, leases: dict) -> str:
        net = self.network.ip_network
        try:
            ip = ipaddress.IPv4Address(want)
        except ValueError:
            raise UserError(f"invalid IP address {want!r}") from None
        if ip not in net or ip in (net.network_address, net.broadcast_address) \
                or str(ip) == self.network.gateway:
            raise UserError(f"IP address {want} is not a free host address of network "
                            f"{self.network.name!r} ({self.network.subnet})")
        if str(ip) in leases:
            raise UserError(f"IP address {want} is already in use on network "
                            f"{self.network.name!r}")
        return str(ip)

    def release(self, owner: str) -> None:
        self.prune(lambda who: who != owner)

    def prune(self, keep: Callable[[str], bool]) -> list[str]:
        """Drop every lease whose owner ``keep`` rejects; the addresses dropped."""
        with self.state.locked():
            leases = self.state.read()
            gone = [a for a, who in leases.items() if not keep(who)]
            if gone:
                for a in gone:
                    del leases[a]
                self.state.write(leases)
        return gone

    def leases(self) -> dict[str, str]:
        with self.state.locked():
            return self.state.read()

    def address_of(self, owner: str) -> str | None:
        return next((a for a, who in self.leases().items() if who == owner), None)

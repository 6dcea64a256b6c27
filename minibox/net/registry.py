"""User-defined networks (``minibox network create|ls|inspect|rm``), persisted per data root.

Each has its own bridge (named from the instance's chain prefix and the network's name, so
two daemons never share one) and its own subnet: given, or the first free /24 of
``AUTO_POOL``; a subnet that overlaps a host route or another network is refused.  The
bridge is made at once (its route then reserves the subnet on this host).
"""

from __future__ import annotations

import hashlib
import ipaddress

from minibox.errors import Conflict, NotFound, UserError
from minibox.net.network import Network, check_no_overlap, default_network, host_routes
from minibox.net.state import JsonState

AUTO_POOL = "172.20.0.0/14"
RESERVED = ("bridge", "host", "none", "build", "default")


class Registry:
    def __init__(self, settings):
        self.settings = settings
        self.state = JsonState(settings.net_dir, "networks")

    def all(self) -> list[Network]:
        with self.state.locked():
            return [Network.from_dict(d) for _, d in sorted(self.state.read().items())]

    def get(self, name: str) -> Network:
        with self.state.locked():
            d = self.state.read().get(name)
        if d is None:
            raise NotFound(f"network {name!r} not found",
                           hint="minibox network ls lists them; minibox network create NAME "
                                "makes one (or use --network bridge, none or host)")
        return Network.from_dict(d)

    def bridge_name(self, name: str) -> str:
        h = hashlib.sha256(f"{self.settings.chain_prefix}/{name}".encode()).hexdigest()
        return "mbn" + h[:12]

    def create(self, name: str, subnet: str | None = None) -> Network:
        if name in RESERVED:
            raise UserError(f"network name {name!r} is reserved",
                            hint="choose another name")
        with self.state.locked():
            nets = self.state.read()
            if name in nets:
                raise Conflict(f"network {name!r} already exists")
            others = [Network.from_dict(d) for d in nets.values()]
            others.append(default_network(self.settings))
            net = Network(name, self.bridge_name(name), subnet or self._auto(others), "bridge")
            for o in others:
                if o.ip_network.overlaps(net.ip_network):
                    raise UserError(f"subnet {net.subnet} overlaps network {o.name!r} "
                                    f"({o.subnet})", hint="choose another --subnet")
            check_no_overlap(net)
            net.ensure(self.settings)
            nets[name] = net.to_dict()
            self.state.write(nets)
        return net

    def _auto(self, others: list[Network]) -> str:
        """The first free /24 of the pool: on no host route, no other network's, and whose
        gateway's port 53 nobody holds (a resolver another daemon left bound to a removed
        network's address would answer this network's queries instead of ours)."""
        taken = [r for _d, r in host_routes()] + [o.ip_network for o in others]
        busy = udp_bound(53)
        for cand in ipaddress.IPv4Network(AUTO_POOL).subnets(new_prefix=24):
            if not any(cand.overlaps(t) for t in taken) \
                    and str(cand.network_address + 1) not in busy:
                return str(cand)
        raise UserError(f"no free /24 left in {AUTO_POOL} for a new network",
                        hint="give one with --subnet")

    def remove(self, name: str, in_use: list[str]) -> None:
        """Remove network ``name``; refused while containers (``in_use``) are on it."""
        net = self.get(name)
        if in_use:
            raise Conflict(f"network {name!r} is in use by {', '.join(in_use)}",
                           hint="remove those containers first")
        with self.state.locked():
            nets = self.state.read()
            nets.pop(name, None)
            self.state.write(nets)
        net.remove(self.settings)


def udp_bound(port: int) -> set[str]:
    """The IPv4 addresses a UDP socket on this host is bound to at ``port``."""
    out = set()
    try:
        with open("/proc/net/udp") as f:
            for line in list(f)[1:]:
                addr, _, p = line.split()[1].partition(":")
                if int(p, 16) == port:
                    out.add(str(ipaddress.IPv4Address(int(addr, 16).to_bytes(4, "little"))))
    except (OSError, ValueError, IndexError):
        pass
    return out

"""What a MiniBox network is: a name, a Linux bridge, an IPv4 subnet (gateway = first host).

``ensure`` makes it real (idempotent): the bridge with the gateway address, the sysctls, and
the network's rules in MiniBox's chains (outbound NAT, forwarding, the CVE-2020-8558 drop).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass

from minibox.errors import UserError

_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Network:
    name: str
    bridge: str
    subnet: str                 # "172.19.0.0/24"
    kind: str = "bridge"        # "bridge" (containers, port maps) or "build"

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise UserError(f"invalid network name {self.name!r}",
                            hint="use letters, digits, '_', '.', '-' (at most 64)")
        if not _IFNAME.match(self.bridge):
            raise UserError(f"invalid bridge name {self.bridge!r} for network {self.name!r}",
                            hint="at most 15 letters, digits, '_', '.', '-'")
        net = self.ip_network
        if net.num_addresses < 8:
            raise UserError(f"subnet {self.subnet} of network {self.name!r} is too small",
                            hint="use a /29 or larger")

    @property
    def ip_network(self) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(self.subnet, strict=True)
        except ValueError as e:
            raise UserError(f"invalid subnet {self.subnet!r} for network {self.name!r}: {e}",
                            hint="write it as an IPv4 network, e.g. 172.19.5.0/24") from None

    @property
    def gateway(self) -> str:
        return str(self.ip_network.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self.ip_network.prefixlen

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Network":
        return cls(d["name"], d["bridge"], d["subnet"], d.get("kind", "bridge"))

    def ensure(self, settings) -> None:
        """Bridge, sysctls and this network's rules (idempotent; safe to call per use)."""
        from minibox.net import iptables, links

        links.ensure_bridge(self.bridge, self.gateway, self.prefixlen,
                            route_localnet=self.kind == "bridge")
        iptables.Rules(settings).set(f"net:{self.name}", iptables.network_rules(self))

    def remove(self, settings) -> None:
        from minibox.net import iptables, links

        iptables.Rules(settings).drop(f"net:{self.name}")
        links.remove_link(self.bridge)


def default_network(settings) -> Network:
    """The containers' default bridge network (``--network bridge``)."""
    return Network("bridge", settings.bridge, settings.bridge_subnet, "bridge")


def build_network(settings) -> Network:
    """The network build steps run on (outbound NAT; no port maps, no route_localnet)."""
    return Network("build", settings.build_bridge, settings.build_subnet, "build")


def host_routes() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(device, network) of the host's IPv4 routes (besides the default route)."""
    out = []
    with open("/proc/net/route") as f:
        next(f, None)
        for line in f:
            dev, dest, _gw, _flags, *_rest, mask = line.split()[:8]
            d = ipaddress.IPv4Address(bytes.fromhex(dest)[::-1])
            m = ipaddress.IPv4Address(bytes.fromhex(mask)[::-1])
            if int(m) == 0:
                continue
            out.append((dev, ipaddress.IPv4Network(f"{d}/{m}", strict=False)))
    return out


def check_no_overlap(net: Network) -> None:
    """Refuse a subnet that overlaps a host route (other than the network's own bridge)."""
    mine = net.ip_network
    for dev, route in host_routes():
        if dev != net.bridge and route.overlaps(mine):
            raise UserError(f"subnet {net.subnet} of network {net.name!r} overlaps the host's "
                            f"route {route} on {dev}",
                            hint="choose another subnet (--subnet), e.g. in 10.x.y.0/24")


MAX_EXTRA = 8
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")       # a host name


def parse_extra(value, primary: str) -> dict[str, list[str]]:
    """A container request's ``extra_networks`` (network name -> its aliases there): the
    user-defined networks it is on besides ``primary`` (eth1, eth2...)."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise UserError("invalid extra_networks: expected a mapping of network names to "
                        "lists of aliases")
    if primary in ("none", "host"):
        raise UserError(f"a container with --network {primary} cannot be on other networks")
    if len(value) > MAX_EXTRA:
        raise UserError(f"a container is on at most {MAX_EXTRA + 1} networks, not "
                        f"{len(value) + 1}")
    out = {}
    for name, aliases in value.items():
        if not isinstance(name, str) or not NAME.match(name) \
                or name in ("bridge", "none", "host", primary):
            raise UserError(f"invalid extra network {name!r}",
                            hint="the name of a user-defined network other than the "
                                 "container's first (minibox network ls)")
        aliases = list(aliases or [])
        for a in aliases:
            if not isinstance(a, str) or not _ALIAS.match(a):
                raise UserError(f"invalid alias {a!r} on network {name!r}",
                                hint="letters, digits, '.' and '-' (a host name)")
        out[name] = aliases
    return out

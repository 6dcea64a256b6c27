"""The networks part of a compose file: the top-level ``networks:`` and a service's
``networks:``; every error names the file, the line and the field path.

Top level (each key; ``default`` is there unless declared)::

    networks:
      front: {}                         # PROJECT_front, its own bridge and subnet
      back:
        driver: bridge                  # the only driver
        ipam: {config: [{subnet: 10.90.0.0/24}]}
      shared: {external: true, name: corp}   # made beforehand (minibox network create)

A service (list or mapping form)::

    networks: [front, back]
    networks:
      back: {aliases: [db, primary]}    # more names on that network (besides the service's)
      front:

The service is on every network it lists (its first one carries its port maps and default
route); without ``networks:`` it is on ``default``.
"""

from __future__ import annotations

import ipaddress
import re

from minibox.compose.model import Network
from minibox.compose.schema import _kind, _known, _top
from minibox.compose.source import Source, child

FIELDS = ("name", "external", "labels", "driver", "ipam")
DRIVERS = ("bridge",)
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")     # a host name, as --network-alias


def top_networks(raw: dict, pname: str, src: Source) -> dict[str, Network]:
    networks = _top(raw, "networks", pname, src, Network, FIELDS)
    for key, net in networks.items():
        body = (raw.get("networks") or {}).get(key) or {}
        where = child("networks", key)
        driver = body.get("driver")
        if driver is not None and driver not in DRIVERS:
            raise src.error(child(where, "driver"), f"unsupported network driver {driver!r}",
                            hint="MiniBox networks are bridges: `driver: bridge`, or leave it out")
        if body.get("ipam") is not None:
            if net.external:
                raise src.error(child(where, "ipam"), "an external network's addresses are "
                                "set where it is made, not here", hint="remove `ipam`")
            net.subnet = _subnet(body["ipam"], child(where, "ipam"), src)
    networks.setdefault("default", Network("default", f"{pname}_default"))
    return networks


def _subnet(v, where: str, src: Source) -> str | None:
    if not isinstance(v, dict):
        raise src.error(where, f"expected a mapping, not {_kind(v)}",
                        hint="ipam:\n  config:\n    - subnet: 10.90.0.0/24")
    _known(v, where, ("driver", "config"), src)
    if v.get("driver") not in (None, "default"):
        raise src.error(child(where, "driver"), f"unsupported IPAM driver {v['driver']!r}",
                        hint="leave it out (MiniBox's own IPAM)")
    config = v.get("config")
    if config is None:
        return None
    at = child(where, "config")
    if not isinstance(config, list) or len(config) > 1:
        raise src.error(at, "expected a list of one address range",
                        hint="config:\n  - subnet: 10.90.0.0/24")
    if not config:
        return None
    item = config[0]
    at = child(at, 0)
    if not isinstance(item, dict):
        raise src.error(at, f"expected a mapping, not {_kind(item)}", hint="- subnet: 10.90.0.0/24")
    _known(item, at, ("subnet",), src)
    subnet = item.get("subnet")
    try:
        return str(ipaddress.IPv4Network(str(subnet), strict=True))
    except ValueError as e:
        raise src.error(child(at, "subnet"), f"invalid subnet {subnet!r}: {e}",
                        hint="an IPv4 network with its prefix, e.g. 10.90.0.0/24") from None


def service_networks(v, where: str, src: Source,
                     networks: dict) -> tuple[list[str], dict[str, list[str]]]:
    """The network keys a service is on (in file order) and its aliases on each."""
    if v is None:
        return ["default"], {}
    if isinstance(v, dict):
        names = list(v)
    elif isinstance(v, list):
        names = v
    else:
        raise src.error(where, f"expected a list or a mapping of networks, not {_kind(v)}",
                        hint="networks: [front, back]")
    if not names:
        raise src.error(where, "a service must be on at least one network",
                        hint="leave `networks` out for the project's default network")
    aliases: dict[str, list[str]] = {}
    for i, n in enumerate(names):
        at = child(where, n if isinstance(v, dict) else i)
        if not isinstance(n, str) or n not in networks:
            known = ", ".join(k for k in networks)
            raise src.error(at, f"the network {n!r} is not declared in the top-level `networks`",
                            hint=f"declare it:  networks:\\n  {n}: {{}}  (declared: {known})")
        if names.index(n) != i:
            raise src.error(at, f"the network {n!r} is listed twice")
        if isinstance(v, dict) and v[n] is not None:
            aliases[n] = _aliases(v[n], at, src)
    return list(names), aliases


def _aliases(body, where: str, src: Source) -> list[str]:
    if not isinstance(body, dict):
        raise src.error(where, f"expected a mapping (or nothing), not {_kind(body)}",
                        hint="back:\n  aliases: [db]")
    _known(body, where, ("aliases",), src)
    out = body.get("aliases") or []
    at = child(where, "aliases")
    if not isinstance(out, list):
        raise src.error(at, f"expected a list of names, not {_kind(out)}", hint="aliases: [db]")
    for i, a in enumerate(out):
        if not isinstance(a, str) or not ALIAS_RE.match(a):
            raise src.error(child(at, i), f"invalid alias {a!r}",
                            hint="letters, digits, '.' and '-' (a host name)")
    return list(out)

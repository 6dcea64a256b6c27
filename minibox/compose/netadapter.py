"""Compose's networks, in one place: the project's networks in the daemon (/networks), and
what a service's container request says about networking (network, alias, ports).

Every project gets its own network (``PROJECT_default``, its own bridge and subnet) where
each service resolves every other by its service name (a network alias; the daemon's
resolver on the network's gateway answers it).  A service with ``networks:`` is on each
network it lists instead (eth0 on the first, eth1... on the others), reachable and
resolvable there only: services that share no network cannot reach each other.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from minibox.compose.model import Project, Service
from minibox.errors import NotFound, UserError


def ensure(d, project: Project, names: list[str], say) -> list[str]:
    """Make the networks the services use; the names of the ones made now.  One that
    exists already must have the subnet the file asks for (else `down` first)."""
    used = [k for k in project.networks
            if any(k in project.services[n].networks for n in names)]
    made = []
    for key in used:
        net = project.networks[key]
        have = _get(d, net.name)
        if have is not None:
            if net.subnet and have.get("subnet") != net.subnet:
                raise UserError(f"network {net.name!r} exists with subnet {have.get('subnet')}, "
                                f"but the file asks for {net.subnet} ({_where(project, key)})",
                                hint="`minibox compose down` removes the project's networks; "
                                     "then `up` makes it again")
            continue
        if net.external:
            raise UserError(f"external network {net.name!r} does not exist "
                            f"({_where(project, key)})",
                            hint=f"create it: minibox network create {net.name}")
        d.c.post("/networks", json={"name": net.name, **({"subnet": net.subnet}
                                                           if net.subnet else {})})
        made.append(net.name)
        say(f"Network {net.name}  Created")
    return made


def _get(d, name: str) -> dict | None:
    try:
        return d.c.get(f"/networks/{quote(name, safe='')}").json()
    except NotFound:
        return None


def _exists(d, name: str) -> bool:
    return _get(d, name) is not None


def _where(project: Project, key: str) -> str:
    line = project.lines.get(f"networks.{key}")
    return f"{os.path.relpath(project.file)}:{line}" if line else os.path.relpath(project.file)


def for_service(project: Project, svc: Service) -> dict:
    """The request fields of a service's container (plan.request merges them): its first
    network (with the port maps), and the others as ``extra_networks``; on each, the
    service's name and its aliases there."""
    keys = svc.networks or ["default"]

    def names(key: str) -> list[str]:
        return [svc.name, *svc.aliases.get(key, [])]
    out = {"network": project.networks[keys[0]].name, "network_aliases": names(keys[0])}
    if len(keys) > 1:
        out["extra_networks"] = {project.networks[k].name: names(k) for k in keys[1:]}
    if svc.ports:
        out["ports"] = list(svc.ports)
    return out


def remove(d, names: list[str]) -> None:
    for name in names:
        try:
            d.c.delete(f"/networks/{quote(name, safe='')}")
        except NotFound:
            pass


def project_networks(d, project: Project) -> list[str]:
    """The networks of the project that exist in the daemon (not external ones)."""
    return [n.name for n in project.networks.values() if not n.external and _exists(d, n.name)]

"""Compose's networks, in one place: the project's networks in the daemon (/networks), and
what a service's container request says about networking (network, alias, ports).

Every project gets its own network (``PROJECT_default``, its own bridge and subnet) where
each service resolves every other by its service name (a network alias; the daemon's
resolver on the network's gateway answers it).  A container is on one network.
"""

from __future__ import annotations

from urllib.parse import quote

from minibox.compose import plan
from minibox.compose.model import Project, Service
from minibox.errors import NotFound, UserError


def ensure(d, project: Project, names: list[str], say) -> list[str]:
    """Make the networks the services use; the names of the ones made now."""
    used = [k for k in project.networks
            if any(k in project.services[n].networks for n in names)]
    made = []
    for key in used:
        net = project.networks[key]
        if _exists(d, net.name):
            continue
        if net.external:
            raise UserError(f"external network {net.name!r} does not exist",
                            hint=f"create it: minibox network create {net.name}")
        d.c.post("/networks", json={"name": net.name})
        made.append(net.name)
        say(f"Network {net.name}  Created")
    return made


def _exists(d, name: str) -> bool:
    try:
        d.c.get(f"/networks/{quote(name, safe='')}")
        return True
    except NotFound:
        return False


def for_service(project: Project, svc: Service) -> dict:
    """The request fields of a service's container (plan.request merges them)."""
    if len(svc.networks) > 1:
        raise UserError(f"service {svc.name!r} is on {len(svc.networks)} networks "
                        f"({plan.where_of(project, svc.name, 'networks')}); a container "
                        "is on one network", hint="keep one network for the service")
    key = (svc.networks or ["default"])[0]
    out = {"network": project.networks[key].name, "network_aliases": [svc.name]}
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

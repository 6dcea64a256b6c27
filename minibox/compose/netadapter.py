"""Compose's networks, in one place: the project's networks in the daemon, and what a
service's container request says about networking (network, aliases, published ports).

Every project gets its own network (``PROJECT_default``) where each service resolves every
other by its service name (an alias on the network).  Without bridge networking in the
daemon (no /networks route) the containers get ``--network none``, and a service that
publishes ports is refused with a clear error.
"""

from __future__ import annotations

from minibox.compose import plan
from minibox.compose.model import Project, Service
from minibox.errors import MiniBoxError, NotFound, UserError

_support: dict[int, bool] = {}


def supported(d) -> bool:
    key = id(d)
    if key not in _support:
        try:
            d.c.get("/networks")
            _support[key] = True
        except MiniBoxError as e:         # no such route: 404 without our error body
            if "404" not in e.message and not isinstance(e, NotFound):
                raise
            _support[key] = False
    return _support[key]


def ensure(d, project: Project, names: list[str], say) -> list[str]:
    """Make the networks the services use; the names of the ones made now."""
    used = [k for k in project.networks
            if any(k in project.services[n].networks for n in names)]
    if not supported(d):
        for n in names:
            if project.services[n].ports:
                raise UserError(f"service {n!r} publishes ports "
                                f"({plan.where_of(project, n, 'ports')}), which needs bridge "
                                "networking: this daemon has none",
                                hint="update miniboxd, or remove `ports:`")
        return []
    made = []
    for key in used:
        net = project.networks[key]
        if _exists(d, net.name):
            continue
        if net.external:
            raise UserError(f"external network {net.name!r} does not exist",
                            hint=f"create it: minibox network create {net.name}")
        d.c.post("/networks", json={"name": net.name, "labels": {
            plan.LABEL_PROJECT: project.name, "minibox.compose.network": key}})
        made.append(net.name)
        say(f"Network {net.name}  Created")
    return made


def _exists(d, name: str) -> bool:
    try:
        d.c.get(f"/networks/{name}")
        return True
    except NotFound:
        return False


def for_service(d, project: Project, svc: Service) -> dict:
    """The request fields of a service's container (plan.request merges them)."""
    if not supported(d):
        return {"network": "none"}
    first, *rest = svc.networks or ["default"]
    out = {"network": project.networks[first].name, "network_aliases": [svc.name]}
    if rest:
        out["networks"] = [project.networks[k].name for k in rest]
    if svc.ports:
        out["ports"] = list(svc.ports)
    return out


def remove(d, names: list[str]) -> None:
    if not names or not supported(d):
        return
    for name in names:
        try:
            d.c.delete(f"/networks/{name}")
        except NotFound:
            pass


def project_networks(d, project: Project) -> list[str]:
    """The networks of the project that exist in the daemon (not external ones)."""
    if not supported(d):
        return []
    return [n.name for n in project.networks.values() if not n.external and _exists(d, n.name)]

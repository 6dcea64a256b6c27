"""/networks: user-defined networks (create, ls, inspect, rm); ``bridge`` is listed too."""

from __future__ import annotations

from fastapi import APIRouter, Body, Request

from minibox.errors import NotFound, UserError

router = APIRouter(prefix="/networks", tags=["networks"])


def _registry(request: Request):
    from minibox.net.registry import Registry

    return Registry(request.app.state.settings)


def _view(net, request: Request, builtin: bool = False) -> dict:
    from minibox.net.ipam import Ipam

    leases = Ipam(request.app.state.settings.net_dir, net).leases()
    return {"name": net.name, "bridge": net.bridge, "subnet": net.subnet,
            "gateway": net.gateway, "builtin": builtin,
            "containers": {owner: ip for ip, owner in sorted(leases.items())}}


def _users(request: Request, name: str) -> list[str]:
    """Names of the containers (running or not) made for network ``name``."""
    from minibox.runtime.state import StateStore, read_json

    out = []
    for rec in StateStore(request.app.state.settings.data_root).all():
        cfg = read_json(rec.dir / "config.json") or {}
        spec = cfg.get("spec") or {}
        if spec.get("network") == name or name in (spec.get("extra_networks") or {}):
            out.append(rec.name)
    return sorted(out)


@router.get("")
def list_(request: Request) -> list:
    from minibox.net.network import default_network

    return [_view(default_network(request.app.state.settings), request, True)] + \
        [_view(n, request) for n in _registry(request).all()]


@router.post("", status_code=201)
def create(request: Request, body: dict = Body(...)) -> dict:
    name = str(body.get("name") or "").strip()
    if not name:
        raise UserError("a network name is required", hint="minibox network create NAME")
    subnet = body.get("subnet") or None
    return _view(_registry(request).create(name, str(subnet) if subnet else None), request)


@router.get("/{name}")
def inspect(request: Request, name: str) -> dict:
    from minibox.net.network import default_network

    if name == "bridge":
        return _view(default_network(request.app.state.settings), request, True)
    return _view(_registry(request).get(name), request)


@router.delete("/{name}")
def remove(request: Request, name: str, force: bool = False) -> dict:
    """Remove a network; refused while containers (running or not) are on it."""
    if name in ("bridge", "host", "none"):
        raise UserError(f"network {name!r} is built in and cannot be removed")
    try:
        _registry(request).remove(name, _users(request, name))
    except NotFound:
        if not force:
            raise
        return {"name": name, "removed": False}
    return {"name": name, "removed": True}

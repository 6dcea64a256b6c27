"""``minibox network create|ls|inspect|rm``."""

from __future__ import annotations

import json

import click


def _client():
    from minibox.cli.client import Client
    return Client()


@click.group()
def network() -> None:
    """Manage networks: each has its own bridge and subnet; containers on one reach each
    other by name (and --network-alias)."""


@network.command()
@click.argument("name")
@click.option("--subnet", default=None,
              help="IPv4 subnet, e.g. 10.20.0.0/24 (default: a free /24 of 172.20.0.0/14).")
def create(name, subnet) -> int:
    """Create a network."""
    r = _client().post("/networks", json={"name": name, "subnet": subnet}).json()
    click.echo(r["name"])
    return 0


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def ls(quiet, as_json) -> int:
    """List networks."""
    from minibox.cli.tables import print_listing
    print_listing(_client().get("/networks").json(), as_json, quiet,
                  ["NAME", "BRIDGE", "SUBNET", "GATEWAY", "CONTAINERS"],
                  lambda r: [r["name"], r["bridge"], r["subnet"], r["gateway"],
                             str(len(r.get("containers") or {}))])
    return 0


@network.command()
@click.argument("names", nargs=-1, required=True)
def inspect(names) -> int:
    """Show networks as JSON."""
    from urllib.parse import quote
    c = _client()
    click.echo(json.dumps([c.get(f"/networks/{quote(n, safe='')}").json() for n in names],
                          indent=2))
    return 0


@network.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="No error for a missing network.")
def rm(names, force) -> int:
    """Remove networks (refused while containers are on them)."""
    from urllib.parse import quote
    c = _client()
    for n in names:
        c.delete(f"/networks/{quote(n, safe='')}", params={"force": force})
        click.echo(n)
    return 0

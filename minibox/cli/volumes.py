"""``minibox volume create|ls|inspect|rm``."""

from __future__ import annotations

import json

import click


def _client():
    from minibox.cli.client import Client
    return Client()


@click.group()
def volume() -> None:
    """Manage volumes (DataRoot/volumes/NAME/_data): named ones, and the anonymous ones
    (64-hex names) that `run -v /path` and an image's VOLUMEs make."""


@volume.command()
@click.argument("name")
@click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE.")
def create(name, labels) -> int:
    """Create a volume."""
    lab = dict(x.partition("=")[::2] for x in labels)
    click.echo(_client().post("/volumes", json={"name": name, "labels": lab}).json()["name"])
    return 0


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def ls(quiet, as_json) -> int:
    """List volumes."""
    from minibox.cli.tables import print_listing
    print_listing(_client().get("/volumes").json(), as_json, quiet, ["DRIVER", "VOLUME NAME"],
                  lambda r: [r.get("driver", "local"), r["name"]])
    return 0


@volume.command()
@click.argument("names", nargs=-1, required=True)
def inspect(names) -> int:
    """Show volumes (JSON)."""
    c = _client()
    click.echo(json.dumps([c.get(f"/volumes/{n}").json() for n in names], indent=2))
    return 0


@volume.command()
@click.option("-f", "--force", is_flag=True,
              help="No error for a missing volume (one in use is never removed).")
@click.argument("names", nargs=-1, required=True)
def rm(force, names) -> int:
    """Remove volumes (refused while a container, running or not, uses them)."""
    c = _client()
    for n in names:
        c.delete(f"/volumes/{n}", params={"force": force})
        click.echo(n)
    return 0

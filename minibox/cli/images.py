"""``minibox images`` and ``minibox rmi``."""

from __future__ import annotations

import click

from minibox.cli import completion as comp


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only names.")
def images(as_json, quiet) -> None:
    """List images."""
    import json

    from minibox.cli.client import Client
    from minibox.cli.tables import human_size, print_table

    imgs = Client().get("/images").json()
    if as_json:
        click.echo(json.dumps(imgs, indent=2))
        return
    if quiet:
        for i in imgs:
            click.echo(i["name"])
        return
    rows = []
    for i in sorted(imgs, key=lambda x: x["name"]):
        repo, _, tag = i["name"].rpartition(":")
        when = _when(i.get("created"))
        rows.append([repo, tag, i["digest"].split(":")[-1][:12], when,
                     human_size(i.get("size", 0))])
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


def _when(created) -> str:
    """An RFC 3339 time as local 'YYYY-MM-DD HH:MM:SS' (as given when it does not parse)."""
    import datetime

    if not created:
        return ""
    try:
        dt = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return str(created)
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@click.argument("names", nargs=-1, required=True, shell_complete=comp.images)
def rmi(names) -> None:
    """Remove image tags."""
    from minibox.cli.client import Client

    client = Client()
    for n in names:
        click.echo("Untagged: " + client.delete(f"/images/{n}").json()["removed"])

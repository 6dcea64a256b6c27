"""``minibox images`` and ``minibox rmi``."""

from __future__ import annotations

import click

from minibox.cli import completion as comp


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only names.")
@click.option("--digests", is_flag=True, help="Show the manifest digests in full.")
def images(as_json, quiet, digests) -> None:
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
        row = [repo, tag, i["digest"].split(":")[-1][:12], when, human_size(i.get("size", 0))]
        if digests:
            row.insert(2, i["digest"])
        rows.append(row)
    head = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    if digests:
        head.insert(2, "DIGEST")
    print_table(head, rows)


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
@click.option("-f", "--force", is_flag=True,
              help="Remove it even if a container uses it (the container keeps its layers).")
def rmi(names, force) -> None:
    """Remove images: untag them and delete what no other image, container or cache uses."""
    from minibox.cli import fastimages

    fastimages.rmi(names, force)


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source, target) -> None:
    """Name the image SOURCE also TARGET (NAME[:TAG])."""
    from minibox.cli.client import Client

    Client().post("/images/tag", json={"source": source, "target": target})

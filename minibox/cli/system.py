"""``minibox ping`` and ``minibox system df|prune|info``."""

from __future__ import annotations

import click


@click.command()
def ping() -> None:
    """Check that the daemon is up."""
    from minibox.cli.client import Client
    click.echo(Client(timeout=10).get("/ping").text)


@click.group()
def system() -> None:
    """Disk use, clean-up and information."""


@system.command()
@click.option("-v", "--verbose", is_flag=True, help="List every image, container and volume.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def df(verbose, as_json) -> None:
    """Show the disk space images, containers, volumes and the build cache take."""
    import json

    from minibox.cli.client import Client
    from minibox.cli.tables import human_size, print_table

    out = Client(timeout=120).get("/system/df", params={"verbose": verbose}).json()
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    rows = []
    for r in out["rows"]:
        pct = f" ({100 * r['reclaimable'] // r['size']}%)" if r["size"] else ""
        rows.append([r["type"], r["total"], r["active"], human_size(r["size"]),
                     human_size(r["reclaimable"]) + pct])
    print_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows)
    if not verbose:
        return
    click.echo("\nImages:")
    print_table(["NAMES", "DIGEST", "CONTAINERS", "SIZE"],
                [[", ".join(i["names"]) or "<none>", i["digest"][7:19], i["containers"],
                  human_size(i["size"])] for i in out["images"]])
    click.echo("\nContainers:")
    print_table(["ID", "NAME", "STATUS", "SIZE"],
                [[c["id"][:12], c["name"], c["status"], human_size(c["size"])]
                 for c in out["containers"]])
    click.echo("\nLocal Volumes:")
    print_table(["NAME", "IN USE", "SIZE"],
                [[v["name"], "yes" if v["in_use"] else "no", human_size(v["size"])]
                 for v in out["volumes"]])


@system.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Also remove images no container uses (not only unreferenced content).")
@click.option("--build-cache", is_flag=True, help="Also remove the build cache.")
@click.option("--volumes", is_flag=True, help="Also remove volumes no container uses.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def prune(all_, build_cache, volumes, force) -> None:
    """Remove what nothing references (running builds and containers keep what they use)."""
    from minibox.cli.client import Client
    from minibox.cli.tables import human_size

    if not force:
        what = ["blobs and layers no image, container or cache entry uses"]
        if all_:
            what.append("every image no container uses")
        if build_cache:
            what.append("the build cache")
        if volumes:
            what.append("every volume no container uses")
        click.confirm("This removes:\n  - " + "\n  - ".join(what) + "\nContinue?",
                      abort=True, err=True)
    out = Client(timeout=None).post("/system/prune", json={
        "all": all_, "build_cache": build_cache, "volumes": volumes}).json()
    for name in out["untagged"]:
        click.echo(f"Untagged: {name}")
    for item in out["deleted"]:
        click.echo(f"Deleted: {item}")
    for name in out["volumes"]:
        click.echo(f"Deleted volume: {name}")
    if out["cache_entries"]:
        click.echo(f"Deleted build cache entries: {out['cache_entries']}")
    click.echo(f"Total reclaimed space: {human_size(out['freed'])}")


@system.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(as_json) -> None:
    """Show the data root, the drivers in use, counts and versions."""
    import json

    from minibox.cli.client import Client

    out = Client().get("/system/info").json()
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    versions = out.pop("versions", {})
    for key, value in out.items():
        click.echo(f"{key.replace('_', ' ').capitalize()}: {value}")
    click.echo("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

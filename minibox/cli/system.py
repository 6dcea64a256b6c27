"""``minibox ping``."""

from __future__ import annotations

import click


@click.command()
def ping() -> None:
    """Check that the daemon is up."""
    from minibox.cli.client import Client
    click.echo(Client(timeout=10).get("/ping").text)

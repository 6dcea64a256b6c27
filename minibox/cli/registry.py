"""``minibox pull``, ``push``, ``login`` and ``logout``: the daemon talks to registries; the
CLI keeps the credentials (``minibox login`` writes them to a 0600 file) and sends the ones
a request needs.  Pull and push do their work in cli/fastimages.py, which main.py also
calls without click for a plain command line."""

from __future__ import annotations

import sys

import click

from minibox.errors import UserError

_INSECURE = click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST",
                         help="Allow plain HTTP to this registry host[:port] (loopback "
                              "always may).")


@click.command()
@click.argument("reference")
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="The platform to pull from an index (default: the daemon's host).")
@_INSECURE
@click.option("-q", "--quiet", is_flag=True, help="Print only the image digest.")
def pull(reference, platform, insecure, quiet) -> None:
    """Pull an image from a registry (Docker Hub by default)."""
    from minibox.cli import fastimages

    fastimages.pull(reference, platform, insecure, quiet)


@click.command()
@click.argument("name")
@click.argument("destination", required=False)
@_INSECURE
@click.option("-q", "--quiet", is_flag=True, help="Print only the manifest digest.")
def push(name, destination, insecure, quiet) -> None:
    """Push the local image NAME to the registry its name (or DESTINATION) says."""
    from minibox.cli import fastimages

    fastimages.push(name, destination, insecure, quiet)


@click.command()
@click.argument("server", required=False, default="docker.io")
@click.option("-u", "--username", default=None, help="The user name.")
@click.option("-p", "--password", default=None,
              help="The password (prefer --password-stdin: this one shows in `ps`).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@_INSECURE
def login(server, username, password, password_stdin, insecure) -> None:
    """Check credentials with a registry and save them (0600) for pull, push and builds."""
    from minibox.cli.client import Client
    from minibox.registry import credentials
    from minibox.registry.config import RegistryConfig

    server = _server(server)
    if password_stdin:
        if password is not None:
            raise UserError("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
    if not username:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    if not password:
        raise UserError("the password is empty", hint="give it with --password-stdin")
    Client(timeout=120).post("/registry/login", json={
        "server": server, "username": username, "password": password,
        "insecure_registries": list(insecure)})
    path = RegistryConfig.from_env().auth_file
    credentials.store(path, server, credentials.Credentials(username, password))
    click.echo(f"Login Succeeded (credentials saved in {path})")


@click.command()
@click.argument("server", required=False, default="docker.io")
def logout(server) -> None:
    """Forget the saved credentials of a registry."""
    from minibox.registry import credentials
    from minibox.registry.config import RegistryConfig

    server = _server(server)
    if not credentials.remove(RegistryConfig.from_env().auth_file, server):
        raise UserError(f"not logged in to {server}")
    click.echo(f"Removed login credentials for {server}")


def _server(text: str) -> str:
    """A registry host[:port] as credentials are keyed (Docker Hub's aliases -> docker.io)."""
    from minibox.registry.reference import DOCKER_HUB, _HUB_ALIASES, looks_like_registry

    host = text.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host.lower() in _HUB_ALIASES:
        return DOCKER_HUB
    if not host or not looks_like_registry(host):
        raise UserError(f"'{text}' is not a registry host",
                        hint="give host[:port], e.g. ghcr.io or 127.0.0.1:5000")
    return host

"""``minibox pull``, ``push``, ``login`` and ``logout``: the daemon talks to registries; the
CLI keeps the credentials (``minibox login`` writes them to a 0600 file) and sends the ones
a request needs."""

from __future__ import annotations

import sys

import click

from minibox.errors import UserError

_INSECURE = click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST",
                         help="Allow plain HTTP to this registry host[:port] (loopback "
                              "always may).")


def _auth_for(registry: str) -> dict | None:
    from minibox.registry import credentials
    from minibox.registry.config import RegistryConfig

    creds = credentials.lookup(RegistryConfig.from_env().auth_file, registry)
    return {"username": creds.username, "password": creds.password} if creds else None


def _transfer(path: str, body: dict, quiet: bool) -> dict:
    """POST a pull or push and follow its progress."""
    from minibox.cli.client import Client
    from minibox.cli.transfer_view import follow

    with Client(timeout=None).stream("POST", path, json=body) as resp:
        return follow(resp, quiet)


@click.command()
@click.argument("reference")
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="The platform to pull from an index (default: the daemon's host).")
@_INSECURE
@click.option("-q", "--quiet", is_flag=True, help="Print only the image digest.")
def pull(reference, platform, insecure, quiet) -> None:
    """Pull an image from a registry (Docker Hub by default)."""
    from minibox.registry.reference import parse

    ref = parse(reference)
    body = {"reference": reference, "platform": platform, "insecure_registries": list(insecure),
            "auth": _auth_for(ref.registry)}
    result = _transfer("/images/pull", body, quiet)
    if quiet:
        click.echo(result["digest"])
    else:
        click.echo(f"Digest: {result['digest']}")
        click.echo(f"Pulled {result['name'] or result['reference']}")


@click.command()
@click.argument("name")
@click.argument("destination", required=False)
@_INSECURE
@click.option("-q", "--quiet", is_flag=True, help="Print only the manifest digest.")
def push(name, destination, insecure, quiet) -> None:
    """Push the local image NAME to the registry its name (or DESTINATION) says."""
    from minibox.registry.reference import parse

    ref = parse(destination or name)
    body = {"name": name, "destination": destination, "insecure_registries": list(insecure),
            "auth": _auth_for(ref.registry)}
    result = _transfer("/images/push", body, quiet)
    click.echo(result["digest"] if quiet else
               f"Pushed {result['reference']}\nDigest: {result['digest']}")


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

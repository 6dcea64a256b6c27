"""Shell completion: ``minibox completion bash|zsh|fish`` prints the script (click's), and
the functions the commands' arguments use to complete names from the daemon.

A name completion is one quick GET (the stdlib client, a short timeout); whatever goes
wrong (the daemon down, slow, older, refusing) completes nothing, silently: a completion
must never print an error into the command line being typed."""

from __future__ import annotations

import click

TIMEOUT = 2.0
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell) -> int:
    """Print the shell completion script for SHELL.

    \b
    bash:  eval "$(minibox completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(minibox completion zsh)"       (in ~/.zshrc)
    fish:  minibox completion fish | source       (in ~/.config/fish/config.fish)

    Commands, flags, and the names of containers, images, volumes, networks and build
    jobs complete (names only while miniboxd answers)."""
    from click.shell_completion import get_completion_class

    from minibox.cli.commands import cli
    comp = get_completion_class(shell)(cli, {}, "minibox", "_MINIBOX_COMPLETE")
    click.echo(comp.source())
    return 0


def _rows(path: str, params: dict | None = None) -> list[dict]:
    from minibox.cli.client import Client
    try:
        rows = Client(timeout=TIMEOUT).get(path, params=params).json()
    except Exception:  # noqa: BLE001 - no daemon, no names (see the module's docstring)
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _names(path: str, key: str = "name", params: dict | None = None) -> list[str]:
    return [r[key] for r in _rows(path, params) if isinstance(r.get(key), str)]


def _starting(names, incomplete: str) -> list[str]:
    return [n for n in dict.fromkeys(names) if n.startswith(incomplete)]


def containers(ctx, param, incomplete: str) -> list[str]:
    """Every container's name (ids when the prefix matches no name)."""
    return _containers({"all": "true"}, incomplete)


def running_containers(ctx, param, incomplete: str) -> list[str]:
    return _containers({"all": "false"}, incomplete)


def _containers(params: dict, incomplete: str) -> list[str]:
    rows = _rows("/containers", params)
    names = _starting((r.get("name") or "" for r in rows), incomplete)
    return names or _starting((r.get("short_id") or "" for r in rows), incomplete)


def images(ctx, param, incomplete: str) -> list[str]:
    """Image names as given to run: ``app`` for ``app:latest``, and every ``name:tag``."""
    full = _names("/images")
    short = [n[:-len(":latest")] for n in full if n.endswith(":latest")]
    return _starting(short + full, incomplete)


def volumes(ctx, param, incomplete: str) -> list[str]:
    return _starting(_names("/volumes"), incomplete)


def networks(ctx, param, incomplete: str) -> list[str]:
    """The daemon's networks (GET /networks, where it has the route) and the built-in ones."""
    return _starting(["none", "host"] + _names("/networks"), incomplete)


def build_jobs(ctx, param, incomplete: str) -> list[str]:
    return _starting(_names("/builds", "id"), incomplete)


def containers_or_images(ctx, param, incomplete: str) -> list[str]:
    kind = ctx.params.get("kind")
    out = [] if kind == "image" else containers(ctx, param, incomplete)
    return out + ([] if kind == "container" else images(ctx, param, incomplete))

"""The ``minibox`` click group.  Subcommands load lazily so ``minibox --help`` stays fast
(no httpx, rich, celery or pyroute2 import until a command needs it)."""

from __future__ import annotations

import importlib

import click

from minibox import __version__

# command name -> "module:attribute"; the module is imported only when the command runs.
COMMANDS = {
    "build": "minibox.cli.build:build",
    "builds": "minibox.cli.build:builds",
    "images": "minibox.cli.images:images",
    "rmi": "minibox.cli.images:rmi",
    "inspect": "minibox.cli.containers:inspect",
    "ping": "minibox.cli.system:ping",
    "run": "minibox.cli.containers:run",
    "ps": "minibox.cli.containers:ps",
    "port": "minibox.cli.containers:port",
    "logs": "minibox.cli.containers:logs",
    "exec": "minibox.cli.containers:exec_",
    "stop": "minibox.cli.containers:stop",
    "kill": "minibox.cli.containers:kill",
    "rm": "minibox.cli.containers:rm",
    "restart": "minibox.cli.containers:restart",
    "start": "minibox.cli.containers:start",
    "stats": "minibox.cli.containers:stats",
    "volume": "minibox.cli.volumes:volume",
    "network": "minibox.cli.networks:network",
    "db": "minibox.cli.containers:db",
    "compose": "minibox.cli.compose:compose",
}

HELP_SUMMARIES = {
    "build": "Build an image from a MiniBox file.",
    "builds": "List, follow and cancel build jobs.",
    "images": "List images.",
    "rmi": "Remove an image tag.",
    "inspect": "Show low-level information about a container or image.",
    "ping": "Check that the daemon is up.",
    "run": "Run a command in a new container.",
    "ps": "List containers.",
    "port": "List a container's port maps.",
    "logs": "Show a container's output.",
    "exec": "Run a command in a running container.",
    "stop": "Stop a container (SIGTERM, then SIGKILL).",
    "kill": "Send a signal to a container.",
    "rm": "Remove containers.",
    "restart": "Restart a container.",
    "start": "Start a stopped container.",
    "stats": "Show containers' resource usage.",
    "volume": "Manage named volumes.",
    "network": "Manage networks.",
    "db": "Run database containers.",
    "compose": "Run multi-container projects (minibox-compose.yaml).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(n, HELP_SUMMARIES.get(n, "")) for n in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="minibox")
def cli() -> None:
    """minibox: build images from MiniBox files and run containers.

    Talks to miniboxd at $MINIBOX_API (default http://127.0.0.1:8080).
    """

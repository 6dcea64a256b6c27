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
    "completion": "minibox.cli.completion:completion",
    "pull": "minibox.cli.registry:pull",
    "push": "minibox.cli.registry:push",
    "login": "minibox.cli.registry:login",
    "logout": "minibox.cli.registry:logout",
    "tag": "minibox.cli.images:tag",
    "save": "minibox.cli.archive:save",
    "load": "minibox.cli.archive:load",
    "system": "minibox.cli.system:system",
    "compose": "minibox.cli.compose:compose",
}

HELP_SUMMARIES = {
    "build": "Build an image from a MiniBox file.",
    "builds": "List, follow and cancel build jobs; list the build workers.",
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
    "completion": "Print the shell completion script (bash, zsh, fish).",
    "pull": "Pull an image from a registry.",
    "push": "Push an image to a registry.",
    "login": "Log in to a registry.",
    "logout": "Log out from a registry.",
    "tag": "Give an image another name.",
    "save": "Write images to an OCI/Docker archive.",
    "load": "Load images from an archive.",
    "system": "Disk use, clean-up and information.",
    "compose": "Run multi-container projects (minibox-compose.yaml).",
}


class UnknownCommand(click.UsageError):
    def __init__(self, name: str, known: list[str], ctx: click.Context):
        import difflib
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        super().__init__(f"unknown command {name!r}", ctx)
        self.hint = (f"did you mean `{ctx.command_path} {close[0]}`?" if close
                     else f"`{ctx.command_path} --help` lists the commands")


class Group(click.Group):
    """A group whose unknown command gets the closest known one suggested."""

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if (name and not name.startswith("-") and not ctx.resilient_parsing
                and name not in self.list_commands(ctx)):
            raise UnknownCommand(name, self.list_commands(ctx), ctx)
        return super().resolve_command(ctx, args)


class LazyGroup(Group):
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


def _use_host(_ctx, _param, value):
    if value:
        from minibox.cli import endpoint
        endpoint.use_host(value)
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-H", "--host", metavar="ADDR", expose_value=False, callback=_use_host,
              help="The daemon: http://HOST:PORT, https://HOST:PORT or unix:///PATH "
                   "[env MINIBOX_API; default http://127.0.0.1:8080].")
@click.version_option(__version__, prog_name="minibox")
def cli() -> None:
    """minibox: build images from MiniBox files and run containers.

    Talks to miniboxd at --host or $MINIBOX_API (default http://127.0.0.1:8080) with the
    API token from $MINIBOX_API_TOKEN or, for a local daemon, the file the daemon keeps it
    in ($MINIBOX_DATA_ROOT/run/api-token: root and the group minibox may read it).  For
    https, $MINIBOX_TLS_CA, $MINIBOX_TLS_CLIENT_CERT and $MINIBOX_TLS_CLIENT_KEY.
    """

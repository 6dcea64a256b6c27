"""``minibox compose``: multi-container projects from a ``minibox-compose.yaml``.

Compose is a client of the daemon's API, as docker compose is (minibox/compose/ does the
work; this module only parses the command line).  pyyaml is loaded by compose only."""

from __future__ import annotations

import sys

import click


def _say(msg: str) -> None:
    click.echo(msg, err=True)


class _Ctx:
    def __init__(self, file: str | None, project_name: str | None):
        self.file_arg, self.name_arg = file, project_name
        self._project = None
        self._daemon = None

    @property
    def project(self):
        if self._project is None:
            from minibox.compose import plan
            self._project = plan.load_project(plan.find_file(self.file_arg), self.name_arg)
        return self._project

    @property
    def daemon(self):
        if self._daemon is None:
            from minibox.compose.daemon import Daemon
            self._daemon = Daemon()
        return self._daemon

    def services(self, names) -> list[str] | None:
        from minibox.compose import plan
        if not names:
            return None
        for n in names:
            if n not in self.project.services:
                from minibox.errors import UserError
                raise UserError(f"no such service: {n}",
                                hint=f"services of {plan.find_file(self.file_arg)}: "
                                     + ", ".join(self.project.services))
        return list(names)


pass_ctx = click.make_pass_decorator(_Ctx)


@click.group()
@click.option("-f", "--file", "file_", default=None,
              help="The compose file (default: ./minibox-compose.yaml).")
@click.option("-p", "--project-name", default=None,
              help="Project name (default: `name:` in the file, else its directory's name).")
@click.pass_context
def compose(ctx, file_, project_name) -> None:
    """Run multi-container projects described by a minibox-compose.yaml.

    \b
    Containers are named PROJECT-SERVICE-1; every project gets its own network, where
    each service reaches every other by its service name.  `up` is idempotent: only
    services whose configuration or image changed are recreated.
    """
    ctx.obj = _Ctx(file_, project_name)


@compose.command()
@click.option("-d", "--detach", is_flag=True, help="Return once the services are up.")
@click.option("--build", "build_", is_flag=True, help="Build images before starting.")
@click.option("-t", "--timeout", default=10, show_default=True, type=int,
              help="Seconds to wait for stops when leaving the foreground (^C).")
@click.argument("services", nargs=-1)
@pass_ctx
def up(c: _Ctx, detach, build_, timeout, services) -> int:
    """Create and start the services (and the services they depend on)."""
    from minibox.compose import up as up_mod
    names = up_mod.up(c.daemon, c.project, c.services(services), build_, _say)
    if detach:
        return 0
    from minibox.compose import logs, ops
    try:
        logs.show(c.daemon, names, follow=True)
    except KeyboardInterrupt:
        _say("stopping ...")
        ops.stop(c.daemon, c.project, c.services(services), timeout, _say)
        return 130
    return 0


@compose.command()
@click.option("-v", "--volumes", is_flag=True,
              help="Remove the named volumes of the file and anonymous volumes too.")
@click.option("-t", "--timeout", default=10, show_default=True, type=int,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@pass_ctx
def down(c: _Ctx, volumes, timeout) -> int:
    """Stop and remove the project's containers and networks (-v: volumes too)."""
    from minibox.compose import ops
    ops.down(c.daemon, c.project, volumes, timeout, _say)
    return 0


@compose.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only the container names.")
@click.argument("services", nargs=-1)
@pass_ctx
def ps(c: _Ctx, all_, quiet, services) -> int:
    """List the project's containers."""
    from minibox.compose import ops
    rows = ops.ps(c.daemon, c.project, c.services(services), all_)
    if quiet:
        for r in rows:
            click.echo(r[0])
        return 0
    from minibox.cli.tables import print_table
    print_table(["NAME", "IMAGE", "SERVICE", "STATUS"], rows)
    return 0


@compose.command()
@click.option("-f", "--follow", is_flag=True, help="Follow the output.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("services", nargs=-1)
@pass_ctx
def logs(c: _Ctx, follow, timestamps, services) -> int:
    """Show the services' output, prefixed with the container's name."""
    from minibox.compose import logs as logs_mod
    from minibox.compose import ops
    rows = ops.ps(c.daemon, c.project, c.services(services), all_=True)
    if not rows:
        _say(f"no containers in project {c.project.name}")
        return 0
    try:
        logs_mod.show(c.daemon, [r[0] for r in rows], follow, timestamps)
    except KeyboardInterrupt:
        return 130
    return 0


@compose.command()
@click.argument("services", nargs=-1)
@pass_ctx
def build(c: _Ctx, services) -> int:
    """Build the images of the services that have `build:` (in parallel)."""
    from minibox.compose import up as up_mod
    names = [n for n in (c.services(services) or c.project.services)
             if c.project.services[n].build]
    up_mod.build_all(c.daemon, c.project, names, _say)
    return 0


@compose.command()
@click.argument("services", nargs=-1)
@pass_ctx
def start(c: _Ctx, services) -> int:
    """Start the project's existing containers."""
    from minibox.compose import ops
    ops.start(c.daemon, c.project, c.services(services), _say)
    return 0


@compose.command()
@click.option("-t", "--timeout", default=10, show_default=True, type=int)
@click.argument("services", nargs=-1)
@pass_ctx
def stop(c: _Ctx, timeout, services) -> int:
    """Stop the project's containers (they stay, `start` starts them again)."""
    from minibox.compose import ops
    ops.stop(c.daemon, c.project, c.services(services), timeout, _say)
    return 0


@compose.command()
@click.option("-t", "--timeout", default=10, show_default=True, type=int)
@click.argument("services", nargs=-1)
@pass_ctx
def restart(c: _Ctx, timeout, services) -> int:
    """Stop and start the project's containers."""
    from minibox.compose import ops
    ops.restart(c.daemon, c.project, c.services(services), timeout, _say)
    return 0


@compose.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-T", "no_tty", is_flag=True, help="No terminal (the default when stdin is none).")
@click.option("-e", "--env", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("-w", "--workdir", default=None)
@click.option("-u", "--user", default=None)
@click.option("--index", default=1, show_default=True, type=int, help="Which container.")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def exec_(c: _Ctx, no_tty, env, workdir, user, index, service, command) -> int:
    """Run COMMAND in a service's running container; exits with its exit code."""
    from minibox.cli import session
    from minibox.cli.client import Client
    from minibox.compose import plan
    c.services([service])
    tty = not no_tty and sys.stdin.isatty()
    body = {"cmd": list(command), "env": list(env), "workdir": workdir, "user": user,
            "tty": tty}
    return session.exec_in(Client(timeout=None), plan.container_name(c.project, service, index),
                           body, tty=tty, interactive=tty)


@compose.command()
@click.option("-q", "--quiet", is_flag=True, help="Only check the file.")
@click.option("--services", "list_services", is_flag=True, help="Only the service names.")
@pass_ctx
def config(c: _Ctx, quiet, list_services) -> int:
    """Check the file and print the project as compose understands it."""
    project = c.project
    if quiet:
        return 0
    if list_services:
        for n in project.services:
            click.echo(n)
        return 0
    from minibox.compose.render import to_yaml
    click.echo(to_yaml(project), nl=False)
    return 0

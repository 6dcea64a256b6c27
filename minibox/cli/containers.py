"""Container commands: run, ps, logs, exec, stop, kill, rm, restart, start, stats, inspect, db.

Imports stay inside the functions (``minibox --help`` must not load the client or rich).
"""

from __future__ import annotations

import json
import os
import sys

import click

from minibox.cli import completion as comp
from minibox.cli.commands import Group

from minibox.cli.run_options import run_options, request_from_options


def _client(timeout: float | None = 60.0):
    from minibox.cli.client import Client
    return Client(timeout=timeout)


def _q(ref: str) -> str:
    from urllib.parse import quote
    return quote(ref, safe="")


# --- run ----------------------------------------------------------------------------------
@click.command(context_settings={"ignore_unknown_options": False,
                                 "allow_interspersed_args": False})
@run_options
@click.argument("image", shell_complete=comp.images)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(image, command, **opts) -> int:
    """Run COMMAND in a new container from IMAGE.

    \b
    Foreground (default): streams the output and exits with the container's exit code
    (125 when minibox itself fails, 126/127 when the command cannot be run).
    -d: prints the container id only.  -it: an interactive terminal (Ctrl-C and Ctrl-D go to
    the container's terminal as in docker; the window size follows yours).
    \b
    Security: containers get Docker's default capabilities, no_new_privs and a seccomp
    filter.  --cap-add/--cap-drop NAME adjust the capabilities (ALL for every one);
    --privileged keeps every capability the engine holds and turns off seccomp, masked
    paths and the devices cgroup; --security-opt seccomp=unconfined turns off seccomp only;
    --security-opt no-new-privileges=false lets setuid binaries gain privileges.
    """
    body = request_from_options(image, list(command), opts)
    from minibox.cli import session
    foreground = not (opts["detach"] or opts["tty"])
    client = None if foreground else _client(None)
    code = session.run_container(client, body, detach=opts["detach"],
                                 tty=opts["tty"], interactive=opts["interactive"])
    if foreground:
        session.exit_now_if_program(code)
    return code


# --- ps -----------------------------------------------------------------------------------
@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default: running).")
@click.option("-q", "--quiet", is_flag=True, help="Only show ids.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="KEY=VALUE: status, name, id, ancestor, health, exited, label (KEY or KEY=VALUE).")
@click.option("--no-trunc", is_flag=True, help="Full ids and commands.")
def ps(all_, quiet, as_json, filters, no_trunc) -> int:
    """List containers."""
    params = [("all", "true" if all_ else "false")] + [("filter", f) for f in filters]
    rows = _client().get("/containers", params=params).json()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    if quiet:
        for r in rows:
            click.echo(r["id"] if no_trunc else r["short_id"])
        return 0
    from minibox.cli.tables import print_table
    table = []
    for r in rows:
        cmd = " ".join(r["command"])
        if not no_trunc and len(cmd) > 25:
            cmd = cmd[:22] + "..."
        table.append([r["id"] if no_trunc else r["short_id"], r["image"], f'"{cmd}"',
                      _created(r.get("created_at")), r["status_text"], r["health"],
                      _ports_column(r.get("ports") or []), r["name"]])
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "HEALTH", "PORTS",
                 "NAMES"], table)
    return 0


def _ports_column(ports: list[dict]) -> str:
    return ", ".join(f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}->{p['ctr_port']}/{p['proto']}"
                     for p in ports)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
def port(container, private_port) -> int:
    """List a container's port maps (or the one of PRIVATE_PORT[/PROTO])."""
    from minibox.errors import NotFound
    net = _client().get(f"/containers/{_q(container)}").json().get("network") or {}
    maps = net.get("ports") or []
    if private_port:
        num, _, proto = private_port.partition("/")
        maps = [m for m in maps if str(m["ctr_port"]) == num and m["proto"] == (proto or "tcp")]
        if not maps:
            raise NotFound(f"no port map for {private_port} of container {container}",
                           hint=f"minibox port {container} lists them")
        for m in maps:
            click.echo(f"{m['host_ip'] or '0.0.0.0'}:{m['host_port']}")
        return 0
    for m in maps:
        click.echo(f"{m['ctr_port']}/{m['proto']} -> {m['host_ip'] or '0.0.0.0'}:{m['host_port']}")
    return 0


def _created(ts) -> str:
    import time
    if not ts:
        return "-"
    sec = int(time.time() - ts)
    for unit, n in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if sec >= n:
            return f"{sec // n} {unit} ago"
    return f"{sec} seconds ago"


# --- logs ---------------------------------------------------------------------------------
@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow the output until the container exits.")
@click.option("-n", "--tail", default="all", help="Lines from the end (default all).")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix RFC 3339 timestamps.")
@click.option("--since", default=None, help="Only after this: a duration (10m) or a unix time.")
@click.argument("container", shell_complete=comp.containers)
def logs(follow, tail, timestamps, since, container) -> int:
    """Show a container's output (stdout to stdout, stderr to stderr)."""
    from minibox.cli.streams import copy_out
    params = {"follow": follow, "timestamps": timestamps, "mux": True}
    if tail != "all":
        if not str(tail).isdigit():
            from minibox.errors import UserError
            raise UserError(f"invalid --tail {tail!r}", hint="a number of lines, or all")
        params["tail"] = int(tail)
    if since:
        params["since"] = _since(since)
    path = f"/containers/{_q(container)}/logs"
    with _client(timeout=None).stream("GET", path, params=params) as resp:
        copy_out(resp)
    return 0


def _since(text: str) -> float:
    import time
    from datetime import datetime
    from minibox.runtime.spec import parse_duration
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() - parse_duration(text, "--since")


# --- exec ---------------------------------------------------------------------------------
@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True,
              help="Keep stdin open: forward yours to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal.")
@click.option("-e", "--env", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("-u", "--user", default=None, help="USER[:GROUP] (name or id).")
@click.argument("container", shell_complete=comp.running_containers)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(interactive, tty, env, workdir, user, container, command) -> int:
    """Run COMMAND inside a running container: its namespaces, cgroup, root, environment,
    capabilities and seccomp filter.  Exits with the command's exit code."""
    from minibox.cli import session
    body = {"cmd": list(command), "env": list(env), "workdir": workdir, "user": user,
            "tty": tty}
    return session.exec_in(_client(None), container, body, tty=tty, interactive=interactive)


# --- stop / kill / rm / start / restart -----------------------------------------------------
@click.command()
@click.option("-t", "--time", "timeout", default=10, type=int, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("containers", nargs=-1, required=True, shell_complete=comp.running_containers)
def stop(timeout, containers) -> int:
    """Stop containers: SIGTERM, then SIGKILL after -t seconds."""
    c = _client(timeout + 60)
    c.post("/containers/stop", json={"ids": list(containers), "t": timeout})
    for name in containers:
        click.echo(name)
    return 0


@click.command()
@click.option("-s", "--signal", "sig", default="SIGKILL", show_default=True,
              help="Signal name or number.")
@click.argument("containers", nargs=-1, required=True, shell_complete=comp.running_containers)
def kill(sig, containers) -> int:
    """Send a signal to containers' init (it forwards it to the workload)."""
    c = _client()
    for name in containers:
        c.post(f"/containers/{_q(name)}/kill", params={"signal": sig})
        click.echo(name)
    return 0


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill running containers first.")
@click.option("-v", "--volumes", is_flag=True,
              help="Remove the containers' anonymous volumes too (named volumes stay).")
@click.argument("containers", nargs=-1, required=True, shell_complete=comp.containers)
def rm(force, volumes, containers) -> int:
    """Remove containers (their upper dir, cgroup and record).  Their anonymous volumes
    stay (dangling, listed by `minibox volume ls`) unless -v is given."""
    c = _client()
    failed = 0
    for name in containers:
        from minibox.errors import MiniBoxError
        try:
            c.delete(f"/containers/{_q(name)}", params={"force": force, "volumes": volumes})
            click.echo(name)
        except MiniBoxError as e:
            from minibox.cli.output import error
            error(e.render())
            failed = 1
    return failed


@click.command()
@click.argument("containers", nargs=-1, required=True, shell_complete=comp.containers)
def start(containers) -> int:
    """Start stopped containers (detached; their filesystem changes are kept)."""
    c = _client()
    for name in containers:
        c.post(f"/containers/{_q(name)}/start")
        click.echo(name)
    return 0


@click.command()
@click.option("-t", "--time", "timeout", default=10, type=int, show_default=True)
@click.argument("containers", nargs=-1, required=True, shell_complete=comp.containers)
def restart(timeout, containers) -> int:
    """Stop (SIGTERM, SIGKILL after -t) and start containers again."""
    c = _client(timeout + 60)
    for name in containers:
        c.post(f"/containers/{_q(name)}/restart", params={"t": timeout})
        click.echo(name)
    return 0


# --- inspect / stats -------------------------------------------------------------------------
@click.command()
@click.option("--type", "kind", type=click.Choice(["container", "image"]), default=None,
              help="Only look for a container, or only for an image.")
@click.argument("refs", nargs=-1, required=True, shell_complete=comp.containers_or_images)
def inspect(kind, refs) -> int:
    """Show low-level information about containers or images (a JSON array).  A name
    that is both is taken as the container unless --type image says otherwise."""
    from minibox.cli.output import error
    from minibox.errors import NotFound
    c = _client()
    out, missing = [], 0
    for r in refs:
        try:
            out.append(_inspect_one(c, kind, r))
        except NotFound:
            error(f"no such {kind or 'container or image'}: {r}")
            missing = 1
    click.echo(json.dumps(out, indent=2))
    return missing


def _inspect_one(c, kind: str | None, ref: str) -> dict:
    from urllib.parse import quote
    from minibox.errors import NotFound
    if kind != "image":
        try:
            return c.get(f"/containers/{_q(ref)}").json()
        except NotFound:
            if kind == "container":
                raise
    return c.get(f"/images/{quote(ref, safe='/:@')}/json").json()


@click.command()
@click.option("--no-stream", is_flag=True, help="Print one sample and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-a", "--all", "all_", is_flag=True, help="Include stopped containers.")
@click.argument("containers", nargs=-1, shell_complete=comp.running_containers)
def stats(no_stream, as_json, all_, containers) -> int:
    """Live resource usage: CPU %, memory, network, block IO, pids."""
    from minibox.cli import stats_view
    return stats_view.show(list(containers), no_stream, as_json, all_)


# --- db ---------------------------------------------------------------------------------------
@click.group(cls=Group)
def db() -> None:
    """Database containers: a named data volume, shared memory, OOM protection."""


from minibox.cli.db import db_run, db_shell  # noqa: E402  (small, click-only module)

db.add_command(db_run, "run")
db.add_command(db_shell, "shell")
db.add_command(db_shell, "console")
_ = (os, sys)

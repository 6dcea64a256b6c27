"""``minibox db run|shell``: database containers as in the reference engine, minus its
privileged mode.  A named data volume ``<name>-data`` at --data, /dev/shm of --shm-size MB,
a tmpfs /tmp, OOM protection (oom_score_adj -900 where the engine may lower it), IO weight
800, and two extra capabilities: IPC_LOCK (locked shared buffers) and SYS_NICE (thread
priorities); nothing that reaches outside the container."""

from __future__ import annotations

import click

from minibox.errors import UserError


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--name", default=None, help="Container name; the volume is NAME-data.")
@click.option("--data", default="/var/lib/minibox-data", show_default=True,
              help="Where the data volume is mounted.")
@click.option("--cmd", default=None, help="Shell command (when no COMMAND is given).")
@click.option("--shm-size", default=256, type=int, show_default=True, help="/dev/shm in MB.")
@click.option("-e", "--env", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("-u", "--user", default=None, help="USER[:GROUP].")
@click.option("-m", "--memory", default=None, help="Memory limit (MB or 512m/1g).")
@click.option("-d", "--detach", is_flag=True, default=True, help="Detached (the default).")
@click.option("-it", "interactive", is_flag=True, help="Interactive terminal instead.")
@click.option("-p", "--publish", multiple=True,
              help="[HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp], as for run (repeatable).")
@click.option("--network", default="bridge", show_default=True,
              help="bridge, none, host or a network's name.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def db_run(name, data, cmd, shm_size, env, user, memory, detach, interactive, publish,
           network, image, command) -> int:
    """Run a database container with a named data volume."""
    if shm_size <= 0:
        raise UserError("--shm-size must be a positive integer (MB)")
    name = name or image.replace(":", "-").replace(".", "-").replace("/", "-")
    argv = list(command) or (["/bin/sh", "-c", cmd] if cmd else None)
    body = {"image": image, "command": argv, "name": name, "env": list(env), "user": user,
            "memory": memory, "volumes": [f"{name}-data:{data}"], "tmpfs": ["/tmp:mode=1777"],
            "shm_size": f"{shm_size}m", "oom_score_adj": -900, "io_weight": 800,
            "db_mode": True, "network": network, "ports": list(publish), "tty": interactive,
            "interactive": interactive}
    from minibox.cli.client import Client
    from minibox.cli import session
    body = {k: v for k, v in body.items() if v is not None}
    return session.run_container(Client(timeout=None), body, detach=not interactive,
                                 tty=interactive, interactive=interactive)


@click.command()
@click.argument("container")
def db_shell(container) -> int:
    """Open the database's console (redis-cli, psql, mongosh, mysql, else sh)."""
    from urllib.parse import quote
    from minibox.cli.client import Client
    from minibox.cli import session
    client = Client(timeout=None)
    info = client.get(f"/containers/{quote(container, safe='')}").json()
    image = ((info.get("image") or {}).get("ref") or "").lower()
    if "redis" in image:
        cmd = ["/bin/sh", "-c", "command -v redis-cli >/dev/null && exec redis-cli || "
               "{ echo 'redis-cli not found in the container'; exit 127; }"]
    elif "postgres" in image:
        cmd = ["/bin/sh", "-c", "exec psql -U postgres"]
    elif "mongo" in image:
        cmd = ["/bin/sh", "-c", 'exec mongosh --username "$MONGO_INITDB_ROOT_USERNAME" '
               '--password "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin']
    elif "mysql" in image or "mariadb" in image:
        cmd = ["/bin/sh", "-c", "exec mysql -uroot"]
    else:
        cmd = ["/bin/sh"]
    return session.exec_in(client, container, {"cmd": cmd, "tty": True}, tty=True,
                           interactive=True)

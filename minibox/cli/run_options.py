"""The flags of ``minibox run`` (shared by ``db run``) and the request body they make."""

from __future__ import annotations

import os

import click

from minibox.errors import UserError

OPTIONS = [
    click.option("-d", "--detach", is_flag=True, help="Run in the background; print the id."),
    click.option("--rm", "autoremove", is_flag=True, help="Remove the container when it exits."),
    click.option("--name", default=None, help="A unique name (default: a generated one)."),
    click.option("-e", "--env", multiple=True, help="KEY=VALUE, or KEY to pass yours on."),
    click.option("--env-file", multiple=True, type=click.Path(dir_okay=False),
                 help="A file of KEY=VALUE lines (# comments)."),
    click.option("-v", "--volume", "volumes", multiple=True,
                 help="SRC:DST[:ro]: SRC a host path (bind) or a volume name."),
    click.option("--tmpfs", multiple=True, help="DST[:OPTIONS]: a tmpfs inside the container."),
    click.option("-w", "--workdir", default=None, help="Working directory inside the container."),
    click.option("-u", "--user", default=None, help="USER[:GROUP], names or ids."),
    click.option("-m", "--memory", default=None,
                 help="Memory limit: megabytes, or with a unit (512m, 1g).  Swap is limited "
                      "to the same, so going over is an OOM kill (exit 137)."),
    click.option("--cpus", default=None, help="CPU quota in CPUs (0.5 = half a CPU)."),
    click.option("-c", "--cpu-shares", type=int, default=None,
                 help="Relative CPU weight, docker's meaning (1024 = normal)."),
    click.option("--cpuset-cpus", default=None, help="CPUs allowed (0-1, 0,2)."),
    click.option("--io-weight", type=int, default=None, help="Block IO weight 10-1000."),
    click.option("--pids-limit", type=int, default=None,
                 help="Max processes (default 4096; -1 for no limit)."),
    click.option("--oom-score-adj", type=int, default=None, help="-1000..1000."),
    click.option("--shm-size", default=None, help="Size of /dev/shm (default 64m)."),
    click.option("--sysctl", "sysctls", multiple=True,
                 help="KEY=VALUE, namespaced only: kernel.shm*, kernel.msg*, kernel.sem, "
                      "fs.mqueue.*, net.* (not with --network host)."),
    click.option("--network", default="none", show_default=True,
                 help="none (own namespace, loopback only) or host; bridge is not supported yet."),
    click.option("--hostname", default=None, help="Container host name (default: short id)."),
    click.option("-i", "--interactive", is_flag=True, help="Keep stdin open (use with -t)."),
    click.option("-t", "--tty", is_flag=True, help="Allocate a terminal."),
    click.option("--entrypoint", default=None, help="Override the image's ENTRYPOINT."),
    click.option("--privileged", is_flag=True,
                 help="Every capability the engine holds, no seccomp, no masked paths."),
    click.option("--cap-add", multiple=True, help="Add a capability (NET_ADMIN, ALL ...)."),
    click.option("--cap-drop", multiple=True, help="Drop a capability (CHOWN, ALL ...)."),
    click.option("--security-opt", multiple=True,
                 help="seccomp=unconfined, or no-new-privileges[=false]."),
    click.option("-l", "--label", "labels", multiple=True, help="KEY=VALUE label."),
    click.option("--health-cmd", default=None, help="Command (shell) to check health."),
    click.option("--health-interval", default=None, help="Time between checks (30s)."),
    click.option("--health-timeout", default=None, help="Max time of one check (30s)."),
    click.option("--health-retries", type=int, default=None, help="Failures before unhealthy (3)."),
    click.option("--health-start-period", default=None, help="Grace period after start (0s)."),
    click.option("--no-healthcheck", is_flag=True, help="Disable the image's healthcheck."),
]


def run_options(fn):
    for opt in reversed(OPTIONS):
        fn = opt(fn)
    return fn


def _env(opts) -> list[str]:
    out = []
    for path in opts.get("env_file") or ():
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UserError(f"cannot read env file {path}: {e.strerror}") from None
        out += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    out += list(opts.get("env") or ())
    resolved = []
    for item in out:
        if "=" not in item:
            if item in os.environ:
                resolved.append(f"{item}={os.environ[item]}")
            continue
        resolved.append(item)
    return resolved


def _volume(v: str) -> str:
    src, sep, rest = v.partition(":")
    if sep and (src.startswith(".") or src.startswith("~")):
        src = os.path.abspath(os.path.expanduser(src))
    return f"{src}{sep}{rest}"


def _kv(items, what: str) -> dict:
    out = {}
    for item in items or ():
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UserError(f"invalid {what} {item!r}", hint="use KEY=VALUE")
        out[k] = v
    return out


def request_from_options(image: str, command: list[str], o: dict) -> dict:
    body = {"image": image, "command": command or None, "name": o.get("name"),
            "env": _env(o), "volumes": [_volume(v) for v in o.get("volumes") or ()],
            "tmpfs": list(o.get("tmpfs") or ()), "workdir": o.get("workdir"),
            "user": o.get("user"), "memory": o.get("memory"), "cpus": o.get("cpus"),
            "cpu_shares": o.get("cpu_shares"), "cpuset_cpus": o.get("cpuset_cpus"),
            "io_weight": o.get("io_weight"), "pids_limit": o.get("pids_limit"),
            "oom_score_adj": o.get("oom_score_adj"), "shm_size": o.get("shm_size"),
            "sysctls": _kv(o.get("sysctls"), "--sysctl"), "network": o.get("network"),
            "hostname": o.get("hostname"), "tty": o.get("tty"),
            "interactive": o.get("interactive"), "autoremove": o.get("autoremove"),
            "privileged": o.get("privileged"), "cap_add": list(o.get("cap_add") or ()),
            "cap_drop": list(o.get("cap_drop") or ()),
            "security_opt": list(o.get("security_opt") or ()),
            "labels": _kv(o.get("labels"), "--label"),
            "no_healthcheck": o.get("no_healthcheck")}
    if o.get("entrypoint") is not None:
        body["entrypoint"] = [o["entrypoint"]] if o["entrypoint"] else []
    if o.get("health_cmd"):
        body["health"] = {"cmd": o["health_cmd"], "interval": o.get("health_interval"),
                          "timeout": o.get("health_timeout"), "retries": o.get("health_retries"),
                          "start_period": o.get("health_start_period")}
    return {k: v for k, v in body.items() if v is not None}

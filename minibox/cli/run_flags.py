"""The flags of ``minibox run`` (shared by ``db run``) as plain data, and the request body
they make.  No click here: ``run_options`` turns the table into click options, and the
fast path of a plain foreground ``run`` (``fastrun``) parses with it without importing
click at all."""

from __future__ import annotations

import os
from collections import namedtuple

from minibox.errors import UserError

# decls ("-d", "--detach"), dest, kind (flag | str | int | multi | path_multi), help, ...
# (a namedtuple, not a dataclass: dataclasses imports inspect, ~25 ms of the fast path)
Flag = namedtuple("Flag", "decls dest kind help default show_default", defaults=(None, False))


FLAGS = (
    Flag(("-d", "--detach"), "detach", "flag", "Run in the background; print the id."),
    Flag(("--rm",), "autoremove", "flag", "Remove the container when it exits."),
    Flag(("--name",), "name", "str", "A unique name (default: a generated one)."),
    Flag(("-e", "--env"), "env", "multi", "KEY=VALUE, or KEY to pass yours on."),
    Flag(("--env-file",), "env_file", "path_multi", "A file of KEY=VALUE lines (# comments)."),
    Flag(("-v", "--volume"), "volumes", "multi",
         "[SRC:]DST[:ro]: SRC a host path (bind) or a volume name; without SRC a new "
         "anonymous volume (filled from the image at DST)."),
    Flag(("--tmpfs",), "tmpfs", "multi", "DST[:OPTIONS]: a tmpfs inside the container."),
    Flag(("-w", "--workdir"), "workdir", "str", "Working directory inside the container."),
    Flag(("-u", "--user"), "user", "str", "USER[:GROUP], names or ids."),
    Flag(("-m", "--memory"), "memory", "str",
         "Memory limit: megabytes, or with a unit (512m, 1g).  Swap is limited to the same, "
         "so going over is an OOM kill (exit 137)."),
    Flag(("--cpus",), "cpus", "str", "CPU quota in CPUs (0.5 = half a CPU)."),
    Flag(("-c", "--cpu-shares"), "cpu_shares", "int",
         "Relative CPU weight, docker's meaning (1024 = normal)."),
    Flag(("--cpuset-cpus",), "cpuset_cpus", "str", "CPUs allowed (0-1, 0,2)."),
    Flag(("--io-weight",), "io_weight", "int", "Block IO weight 10-1000."),
    Flag(("--pids-limit",), "pids_limit", "int", "Max processes (default 4096; -1 for no limit)."),
    Flag(("--oom-score-adj",), "oom_score_adj", "int", "-1000..1000."),
    Flag(("--shm-size",), "shm_size", "str", "Size of /dev/shm (default 64m)."),
    Flag(("--sysctl",), "sysctls", "multi",
         "KEY=VALUE, namespaced only: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, "
         "net.* (not with --network host)."),
    Flag(("--network",), "network", "str",
         "bridge (the default network: own namespace, an address on the minibox0 bridge, "
         "outbound NAT), none (loopback only), host, or a network's name.",
         default="bridge", show_default=True),
    Flag(("--network-alias",), "network_aliases", "multi",
         "Another name the container has on its (user-defined) network."),
    Flag(("-p", "--publish"), "ports", "multi",
         "[HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]: map a host port (or range) to the "
         "container's (without HOSTPORT: a free one)."),
    Flag(("-P", "--publish-all"), "publish_all", "flag",
         "Map every port the image declares (PORT) to a free host port."),
    Flag(("--hostname",), "hostname", "str", "Container host name (default: short id)."),
    Flag(("-i", "--interactive"), "interactive", "flag",
         "Keep stdin open: forward yours to the container."),
    Flag(("-t", "--tty"), "tty", "flag", "Allocate a terminal."),
    Flag(("--entrypoint",), "entrypoint", "str", "Override the image's ENTRYPOINT."),
    Flag(("--privileged",), "privileged", "flag",
         "Every capability the engine holds, no seccomp, no masked paths."),
    Flag(("--cap-add",), "cap_add", "multi", "Add a capability (NET_ADMIN, ALL ...)."),
    Flag(("--cap-drop",), "cap_drop", "multi", "Drop a capability (CHOWN, ALL ...)."),
    Flag(("--security-opt",), "security_opt", "multi",
         "seccomp=unconfined, or no-new-privileges[=false]."),
    Flag(("-l", "--label"), "labels", "multi", "KEY=VALUE label."),
    Flag(("--health-cmd",), "health_cmd", "str", "Command (shell) to check health."),
    Flag(("--health-interval",), "health_interval", "str", "Time between checks (30s)."),
    Flag(("--health-timeout",), "health_timeout", "str", "Max time of one check (30s)."),
    Flag(("--health-retries",), "health_retries", "int", "Failures before unhealthy (3)."),
    Flag(("--health-start-period",), "health_start_period", "str",
         "Grace period after start (0s)."),
    Flag(("--no-healthcheck",), "no_healthcheck", "flag", "Disable the image's healthcheck."),
    Flag(("--restart",), "restart", "str",
         "no (default), on-failure[:MAX_RETRIES], always or unless-stopped: the daemon "
         "restarts the container when it exits (back-off 0.1 s doubling to 1 min; a stop "
         "by the user is not restarted)."),
    Flag(("--log-opt",), "log_opts", "multi",
         "Log rotation: max-size=SIZE (default 10m; at least 1k), max-file=N "
         "(3; other values are not supported yet)."),
)


def defaults() -> dict:
    return {f.dest: (False if f.kind == "flag" else () if f.kind.endswith("multi") else f.default)
            for f in FLAGS}


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
            "ports": list(o.get("ports") or ()), "publish_all": o.get("publish_all"),
            "network_aliases": list(o.get("network_aliases") or ()),
            "hostname": o.get("hostname"), "tty": o.get("tty"),
            "interactive": o.get("interactive"), "autoremove": o.get("autoremove"),
            "privileged": o.get("privileged"), "cap_add": list(o.get("cap_add") or ()),
            "cap_drop": list(o.get("cap_drop") or ()),
            "security_opt": list(o.get("security_opt") or ()),
            "labels": _kv(o.get("labels"), "--label"),
            "no_healthcheck": o.get("no_healthcheck"),
            "log_opts": list(o.get("log_opts") or ()) or None, "restart": o.get("restart")}
    if o.get("entrypoint") is not None:
        body["entrypoint"] = [o["entrypoint"]] if o["entrypoint"] else []
    if o.get("health_cmd"):
        body["health"] = {"cmd": o["health_cmd"], "interval": o.get("health_interval"),
                          "timeout": o.get("health_timeout"), "retries": o.get("health_retries"),
                          "start_period": o.get("health_start_period")}
    return {k: v for k, v in body.items() if v is not None}

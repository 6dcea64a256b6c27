"""What a client asks for, validated once into a ``ContainerSpec``, with clear errors.

The API takes a JSON body with these fields (minibox.wire.api.RunRequest); the CLI fills it
from its flags.  Everything a person can get wrong is checked here, at the API edge, before
anything is queued: the runtime worker gets the frozen ``ContainerSpec`` (minibox.wire.runtime)
and does not check it again.
"""

from __future__ import annotations

import os
import re

from minibox.errors import UserError
from minibox.net.network import parse_extra
from minibox.runtime.security import caps
from minibox.wire.runtime import (DEFAULT_LOG_MAX_FILES, DEFAULT_LOG_MAX_SIZE,
                                  DEFAULT_PIDS_LIMIT, DEFAULT_SHM_SIZE, ContainerSpec,
                                  HealthSpec, Mount)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[^=\0]+$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")
NETWORKS = ("none", "host", "bridge")
NETWORK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SYSCTL_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.", "net.")
SYSCTL_EXACT = ("kernel.sem",)


# --- parsing the pieces a person types -------------------------------------------------
SIZE_UNITS = {"b": 1, "k": 1 << 10, "": 1 << 20, "m": 1 << 20, "g": 1 << 30}
# the most a cgroup limit can hold (the kernel's page counter; above it means no limit)
MAX_SIZE = (2 ** 63 - 1) // 4096 * 4096


def parse_memory(value, what: str = "memory limit", flag: str = "-m") -> int:
    """``-m``: MB as a number, or a size with a unit (512m, 1g, 65536k, 1048576b)."""
    if value in (None, "", 0, "0"):
        return 0
    n = parse_size(value, what, "", f"give megabytes ({flag} 256) or a size with a unit (512m, 1g)")
    if n < (6 << 20):
        raise UserError(f"{what} {value!r} is too small", hint="the minimum is 6 MB")
    return n


def parse_size(value, what: str, default_unit: str, hint: str) -> int:
    """Bytes from a number and an optional unit (b, k, m, g; ``default_unit`` without one),
    computed exactly (a float would turn 400 digits into infinity); at most MAX_SIZE."""
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?\s*([bkmg]?)i?b?", text)
    if not m:
        raise UserError(f"invalid {what} {value!r}", hint=hint)
    whole, frac = m.group(1).lstrip("0"), (m.group(2) or "")[:30]
    if len(whole) > 30:
        n = MAX_SIZE + 1
    else:
        n = (int(whole or 0) * 10 ** len(frac) + int(frac or 0)) \
            * SIZE_UNITS[m.group(3) or default_unit] // 10 ** len(frac)
    if n > MAX_SIZE:
        shown = text if len(text) <= 40 else text[:20] + "..." + text[-8:]
        raise UserError(f"{what} {shown!r} is too large",
                        hint="the kernel's maximum is 8 EiB (8589934591g); leave it out for no limit")
    return n


def parse_cpus(value) -> float:
    if value in (None, "", 0, "0"):
        return 0.0
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise UserError(f"invalid --cpus value {value!r}", hint="a number of CPUs, e.g. 0.5 or 2") from None
    if not 0.01 <= n <= 1024:
        raise UserError(f"--cpus {value!r} is out of range", hint="between 0.01 and the CPU count")
    return n


def parse_duration(value, what: str) -> float:
    """Seconds from 30, "30", "30s", "500ms", "1m", "1h"."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value or ""))
    if not m:
        raise UserError(f"invalid {what} {value!r}", hint="durations look like 30s, 500ms, 1m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def parse_env(items) -> list[str]:
    out = []
    for item in items or []:
        if (not isinstance(item, str) or "=" not in item or "\0" in item
                or not ENV_KEY_RE.match(item.split("=", 1)[0])):
            raise UserError(f"invalid environment variable {item!r}", hint="use -e KEY=VALUE")
        out.append(item)
    return out


def parse_volume(text: str) -> Mount:
    """``-v [SRC:]DST[:ro|rw]``: SRC an absolute host path (bind) or a volume name; without
    SRC an anonymous volume (a fresh one per container, as Docker makes them)."""
    parts = text.split(":") if isinstance(text, str) else []
    mode = ""
    if len(parts) == 3 or (len(parts) == 2 and parts[1] in ("ro", "rw")):
        mode = parts.pop()
    if len(parts) == 1 and parts[0]:
        parts.insert(0, "")          # an anonymous volume: DST[:MODE]
    elif len(parts) == 2 and not parts[0]:
        parts = []                   # ":/dst": an empty source
    if len(parts) != 2 or not parts[1] or mode not in ("", "ro", "rw"):
        raise UserError(f"invalid volume {text!r}",
                        hint="use -v /host/path:/container/path[:ro], -v NAME:/path[:ro] "
                             "or -v /path (an anonymous volume)")
    src, dst = parts
    check_target(dst, text)
    if not src:
        return Mount(source="", target=dst, readonly=mode == "ro", kind="volume")
    if src.startswith("/"):
        return Mount(source=src, target=dst, readonly=mode == "ro", kind="bind")
    if not VOLUME_NAME_RE.match(src):
        raise UserError(f"invalid volume name {src!r} in {text!r}",
                        hint="a host path must be absolute; a volume name is letters, digits, _ . -")
    return Mount(source=src, target=dst, readonly=mode == "ro", kind="volume")


def parse_log_opts(items) -> tuple[int, int]:
    """``--log-opt max-size=SIZE`` (10m, 512k, 1g; at least 1k) and ``max-file=N``."""
    size, files = DEFAULT_LOG_MAX_SIZE, DEFAULT_LOG_MAX_FILES
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not value:
            raise UserError(f"invalid --log-opt {item!r}", hint="use KEY=VALUE, e.g. max-size=10m")
        if key == "max-size":
            size = _log_size(value)
        elif key == "max-file":
            files = _int(value, "--log-opt max-file", 1, 100)
        else:
            raise UserError(f"unknown --log-opt {key!r}", hint="supported: max-size, max-file")
    if files != DEFAULT_LOG_MAX_FILES:
        # the container monitors keep DEFAULT_LOG_MAX_FILES files for now
        raise UserError(f"--log-opt max-file={files} is not supported yet",
                        hint=f"containers keep {DEFAULT_LOG_MAX_FILES} log files")
    return size, files


def _log_size(value: str) -> int:
    n = parse_size(value, "--log-opt max-size", "b", "a size with a unit: 512k, 10m, 1g")
    if n < 1024:
        raise UserError(f"--log-opt max-size {value!r} is too small", hint="at least 1k")
    return n


def check_target(dst: str, text: str) -> None:
    if not dst.startswith("/") or "\0" in dst or any(p == ".." for p in dst.split("/")):
        raise UserError(f"invalid container path in {text!r}",
                        hint="the container path must be absolute and must not contain ..")
    if dst.rstrip("/") in ("", "/proc", "/sys", "/dev"):
        raise UserError(f"cannot mount over {dst!r}", hint="choose another container path")


def parse_sysctls(items: dict, network: str) -> dict[str, str]:
    out = {}
    for key, value in (items or {}).items():
        k = str(key).strip()
        ok = k in SYSCTL_EXACT or k.startswith(SYSCTL_PREFIXES)
        if not ok or not re.fullmatch(r"[a-z0-9_.-]+", k):
            raise UserError(f"sysctl {k!r} is not allowed",
                            hint="only namespaced sysctls: kernel.shm*, kernel.msg*, kernel.sem, "
                                 "fs.mqueue.*, net.* (net.* not with --network host)")
        if k.startswith("net.") and network == "host":
            raise UserError(f"sysctl {k!r} cannot be set with --network host",
                            hint="it would change the host's network settings")
        out[k] = str(value)
    return out


def parse_health(data: dict | None) -> HealthSpec | None:
    if not data or not data.get("cmd"):
        return None
    cmd = data["cmd"]
    if isinstance(cmd, str):
        cmd = ["/bin/sh", "-c", cmd]
    if not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd) or not cmd:
        raise UserError("invalid --health-cmd", hint="a shell command string")
    kw = {}
    for key in ("interval", "timeout", "start_period"):
        if data.get(key) not in (None, ""):
            kw[key] = parse_duration(data[key], f"--health-{key.replace('_', '-')}")
    if data.get("retries") not in (None, ""):
        kw["retries"] = _int(data["retries"], "--health-retries", 1, 1000)
    h = HealthSpec(cmd=cmd, **kw)
    if h.interval <= 0 or h.timeout <= 0:
        raise UserError("health interval and timeout must be positive")
    return h


RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def parse_restart(value) -> dict:
    """``--restart no|on-failure[:N]|always|unless-stopped`` -> {name, max_retries}
    (max_retries 0: no limit; only on-failure takes one)."""
    text = str(value or "no").strip()
    name, sep, count = text.partition(":")
    hint = "use no, on-failure[:MAX_RETRIES], always or unless-stopped"
    if name not in RESTART_POLICIES:
        raise UserError(f"invalid restart policy {text!r}", hint=hint)
    if sep and name != "on-failure":
        raise UserError(f"restart policy {name!r} takes no retry count ({text!r})", hint=hint)
    retries = _int(count, "--restart on-failure retry count", 0, 1_000_000) if sep else 0
    return {"name": name, "max_retries": retries}


def _int(value, what: str, lo: int, hi: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"invalid {what} value {value!r}", hint="an integer") from None
    if not lo <= n <= hi:
        raise UserError(f"{what} {n} is out of range", hint=f"between {lo} and {hi}")
    return n


def _str_list(value, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"invalid {what}", hint="a list of strings")
    if any("\0" in v for v in value):
        raise UserError(f"invalid {what}: a NUL byte in {value!r}", hint="arguments cannot contain NUL")
    return value


def from_request(data: dict) -> ContainerSpec:
    """Validate an API request body into a ContainerSpec (UserError on anything wrong)."""
    if not isinstance(data, dict):
        raise UserError("invalid request: expected a JSON object")
    image = str(data.get("image") or "").strip()
    if not image:
        raise UserError("an image is required", hint="minibox run IMAGE [COMMAND...]")
    network = str(data.get("network") or "bridge")
    if network not in NETWORKS and not NETWORK_NAME_RE.match(network):
        raise UserError(f"invalid network {network!r}",
                        hint="use --network bridge (the default), none, host or a network's "
                             "name (minibox network ls)")
    ports = _ports(data, network)
    name = data.get("name") or None
    if name is not None and not NAME_RE.match(str(name)):
        raise UserError(f"invalid container name {name!r}",
                        hint="letters, digits, _ . - (starting with a letter or digit)")
    hostname = data.get("hostname") or None
    if hostname is not None and not HOSTNAME_RE.match(hostname):
        raise UserError(f"invalid hostname {hostname!r}")
    mounts = [parse_volume(v) for v in data.get("volumes") or []]
    for t in data.get("tmpfs") or []:
        path, _, opts = str(t).partition(":")
        check_target(path, t)
        mounts.append(Mount(source="tmpfs", target=path, kind="tmpfs", options=opts))
    _no_duplicate_targets(mounts)
    restart = parse_restart(data.get("restart"))
    if data.get("autoremove") and restart["name"] != "no":
        raise UserError("--restart and --rm cannot be used together",
                        hint="a container removed at its exit cannot be restarted: drop one")
    log_max_size, log_max_files = parse_log_opts(_str_list(data.get("log_opts"), "--log-opt"))
    seccomp, no_new_privileges = _security_opts(data.get("security_opt") or [])
    workdir = data.get("workdir") or None
    if workdir is not None and not workdir.startswith("/"):
        raise UserError(f"invalid working directory {workdir!r}", hint="it must be absolute")
    return ContainerSpec(
        image=image, name=name, hostname=hostname, network=network, ports=ports,
        network_aliases=_aliases(data, network),
        extra_networks=parse_extra(data.get("extra_networks"), network),
        publish_all=bool(data.get("publish_all")),
        command=_str_list(data.get("command"), "command") or None,
        entrypoint=_str_list(data.get("entrypoint"), "entrypoint"),
        env=parse_env(data.get("env")), mounts=mounts,
        workdir=workdir, user=(data.get("user") or None),
        memory=parse_memory(data.get("memory")), cpus=parse_cpus(data.get("cpus")),
        cpu_shares=_int(data.get("cpu_shares") or 0, "-c/--cpu-shares", 0, 262144),
        cpuset_cpus=_cpuset(data.get("cpuset_cpus") or ""),
        io_weight=_int(data.get("io_weight") or 0, "--io-weight", 0, 1000),
        pids_limit=_int(data.get("pids_limit", DEFAULT_PIDS_LIMIT) if data.get("pids_limit")
                        is not None else DEFAULT_PIDS_LIMIT, "--pids-limit", -1, 4194304),
        oom_score_adj=_int(data.get("oom_score_adj") or 0, "--oom-score-adj", -1000, 1000),
        shm_size=(parse_memory(data["shm_size"], "--shm-size", "--shm-size")
                  if data.get("shm_size") else DEFAULT_SHM_SIZE),
        sysctls=parse_sysctls(data.get("sysctls") or {}, network),
        tty=bool(data.get("tty")), interactive=bool(data.get("interactive")),
        autoremove=bool(data.get("autoremove")), privileged=bool(data.get("privileged")),
        cap_add=[caps.normalize(c) for c in data.get("cap_add") or []],
        cap_drop=[caps.normalize(c) for c in data.get("cap_drop") or []],
        health=parse_health(data.get("health")), no_healthcheck=bool(data.get("no_healthcheck")),
        labels=dict(data.get("labels") or {}), db_mode=bool(data.get("db_mode")),
        restart=restart, log_max_size=log_max_size, log_max_files=log_max_files,
        seccomp=seccomp, no_new_privileges=no_new_privileges,
    )


def _aliases(data: dict, network: str) -> list[str]:
    aliases = _str_list(data.get("network_aliases"), "--network-alias") or []
    for a in aliases:
        if not HOSTNAME_RE.match(a):
            raise UserError(f"invalid --network-alias {a!r}",
                            hint="letters, digits, '.' and '-' (a host name)")
    if aliases and network in NETWORKS:
        raise UserError(f"--network-alias needs a user-defined network, not --network {network}",
                        hint="minibox network create NAME, then --network NAME")
    return aliases


def _ports(data: dict, network: str) -> list[dict]:
    from minibox.net import ports as net_ports

    maps = net_ports.parse_all(_str_list(data.get("ports"), "-p/--publish") or [])
    if (maps or data.get("publish_all")) and network in ("none", "host"):
        raise UserError(f"-p/-P need a bridge network, not --network {network}",
                        hint="leave --network out (bridge is the default)" if network == "none"
                        else "with --network host the container uses the host's ports directly")
    return [m.to_dict() for m in maps]


def _no_duplicate_targets(mounts: list[Mount]) -> None:
    seen = set()
    for m in mounts:
        t = os.path.normpath(m.target)
        if t in seen:
            raise UserError(f"duplicate mount point {t}", hint="mount one thing at each path")
        seen.add(t)


def _cpuset(text: str) -> str:
    text = str(text).strip()
    if text and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text):
        raise UserError(f"invalid --cpuset-cpus {text!r}", hint="e.g. 0 or 0-1 or 0,2")
    return text


def _security_opts(opts: list[str]) -> tuple[bool, bool]:
    """--security-opt: (seccomp, no_new_privileges)."""
    seccomp, nnp = True, True
    for opt in opts:
        key, _, value = str(opt).replace(":", "=", 1).partition("=")
        if key == "seccomp" and value == "unconfined":
            seccomp = False
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            nnp = value != "false"
        else:
            raise UserError(f"unsupported --security-opt {opt!r}",
                            hint="supported: seccomp=unconfined, no-new-privileges[=true|false]")
    return seccomp, nnp

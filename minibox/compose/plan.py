"""Planning a project: the file to read, the start order (waves of services whose
dependencies are all in earlier waves), container names, each service's container request
and the hash that tells whether a running container still matches its service."""

from __future__ import annotations

import hashlib
import json
import os
import re

from minibox.compose.model import Project, Service
from minibox.compose.source import Source, child, load
from minibox.errors import UserError

DEFAULT_FILES = ("minibox-compose.yaml", "minibox-compose.yml")
LABEL_PROJECT = "minibox.compose.project"
LABEL_SERVICE = "minibox.compose.service"
LABEL_NUMBER = "minibox.compose.number"
LABEL_HASH = "minibox.compose.config-hash"
DB_DEFAULTS = {"shm_size": "256m", "oom_score_adj": -900, "io_weight": 800}


def find_file(given: str | None) -> str:
    if given:
        if not os.path.isfile(given):
            raise UserError(f"no compose file at {given}", hint="check the -f path")
        return given
    for name in DEFAULT_FILES:
        if os.path.isfile(name):
            return name
    raise UserError(f"no {DEFAULT_FILES[0]} in {os.getcwd()}",
                    hint="run from the project's directory, or name the file with -f FILE")


def load_project(path: str, name: str | None = None) -> Project:
    from minibox.compose.schema import project_from
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    raw, src = load(path, text)
    project = project_from(raw, src, os.path.abspath(path), name)
    waves(project, src)             # a cycle is a file error too
    return project


def waves(project: Project, src: Source | None = None) -> list[list[str]]:
    """Services in waves: each depends only on services of earlier waves; in file order
    within a wave.  A cycle is an error that names it and where it starts."""
    left = dict(project.services)
    done: set[str] = set()
    out = []
    while left:
        wave = [n for n, s in left.items() if set(s.depends_on) <= done]
        if not wave:
            cycle = _cycle(left)
            where = f"services.{cycle[0]}.depends_on"
            msg = "dependency cycle: " + " -> ".join(cycle)
            if src is not None:
                raise src.error(where, msg, hint="remove one of these depends_on entries")
            raise UserError(msg)
        out.append(wave)
        done.update(wave)
        for n in wave:
            del left[n]
    return out


def _cycle(left: dict[str, Service]) -> list[str]:
    start = next(iter(left))
    path, seen = [start], {start: 0}
    while True:
        nxt = next(d for d in left[path[-1]].depends_on if d in left)
        if nxt in seen:
            return path[seen[nxt]:] + [nxt]
        seen[nxt] = len(path)
        path.append(nxt)


def dependants(project: Project, names: list[str]) -> list[str]:
    """``names`` and every service they need, transitively, in file order."""
    want, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in want:
            continue
        if n not in project.services:
            raise UserError(f"no such service: {n}",
                            hint="services: " + ", ".join(project.services))
        want.add(n)
        todo.extend(project.services[n].depends_on)
    return [n for n in project.services if n in want]


def container_name(project: Project, service: str, number: int = 1) -> str:
    return f"{project.name}-{service}-{number}"


def image_of(project: Project, svc: Service) -> str:
    return svc.image or f"{project.name}-{svc.name}"


def data_volume(project: Project, svc: Service) -> str:
    return f"{project.name}_{svc.name}-data"


def seconds(text: str | None) -> float | None:
    """compose durations: 30, 30s, 1m30s, 500ms."""
    if text is None:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", str(text))
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}[u]
               for n, u in parts)


def request(project: Project, svc: Service, number: int = 1,
            network: dict | None = None) -> dict:
    """The daemon's container request (POST /containers) for one container of ``svc``.
    ``network``: what the network adapter adds (network, aliases, ports)."""
    mounts, tmpfs = [], []
    for m in svc.volumes:
        ro = ":ro" if m.readonly else ""
        if m.kind == "bind":
            mounts.append(f"{m.source}:{m.target}{ro}")
        elif m.kind == "volume":
            mounts.append(f"{project.volumes[m.source].name}:{m.target}{ro}")
        elif m.kind == "anonymous":
            mounts.append(f"{m.target}{ro}")
        else:
            tmpfs.append(m.target)
    body = {"image": image_of(project, svc), "name": container_name(project, svc.name, number),
            "command": svc.command, "env": list(svc.environment), "volumes": mounts,
            "tmpfs": tmpfs, "workdir": svc.working_dir, "user": svc.user,
            "hostname": svc.hostname or svc.name, "memory": svc.mem_limit, "cpus": svc.cpus,
            "shm_size": svc.shm_size, "restart": svc.restart, "network": "none"}
    if svc.entrypoint is not None:
        body["entrypoint"] = svc.entrypoint
    if svc.db_mode:
        body.update(db_mode=True, oom_score_adj=DB_DEFAULTS["oom_score_adj"],
                    io_weight=DB_DEFAULTS["io_weight"])
        body["shm_size"] = svc.shm_size or DB_DEFAULTS["shm_size"]
        if "/tmp" not in tmpfs:
            tmpfs.append("/tmp:mode=1777")
        if svc.data:
            body["volumes"].append(f"{data_volume(project, svc)}:{svc.data}")
    hc = svc.healthcheck
    if hc is not None and hc.test is None:
        body["no_healthcheck"] = True
    elif hc is not None:
        body["health"] = {"cmd": hc.test, "interval": seconds(hc.interval),
                          "timeout": seconds(hc.timeout), "retries": hc.retries,
                          "start_period": seconds(hc.start_period)}
    body.update(network or {})
    labels = {LABEL_PROJECT: project.name, LABEL_SERVICE: svc.name, LABEL_NUMBER: str(number)}
    if svc.expose:
        labels["minibox.compose.expose"] = ",".join(svc.expose)
    body["labels"] = {**labels, LABEL_HASH: config_hash(body)}
    return {k: v for k, v in body.items() if v is not None}


def config_hash(body: dict) -> str:
    """What the container was made from (its request without the labels this adds)."""
    data = {k: v for k, v in body.items() if k != "labels"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def where_of(project: Project, service: str, field: str = "") -> str:
    """``FILE:LINE`` of a service (or one of its fields), for messages after loading."""
    path = child(child("services", service), field) if field else child("services", service)
    line = project.lines.get(path) or project.lines.get(child("services", service), 0)
    return f"{os.path.relpath(project.file)}:{line}"

"""Validating a compose file into a Project: every error names the file, the line and the
field path (``minibox-compose.yaml:14: services.web.ports[1]: ...``) and says what is
expected.  The compose-spec subset MiniBox takes is in ``SERVICE_FIELDS``; an unknown
field is an error (with "did you mean"), not silently ignored; ``x-*`` fields are free."""

from __future__ import annotations

import difflib
import os
import re
import shlex

from minibox.compose.model import (CONDITIONS, Build, Healthcheck, NamedVolume,
                                   Project, Service, VolumeMount)
from minibox.compose.source import Source, child

PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SERVICE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
KEY_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
PORT_RE = re.compile(r"^(?:(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5})?:)?(\d{1,5})(?:/(tcp|udp))?$")
DURATION_RE = re.compile(r"^\s*(\d+(\.\d+)?(ms|s|m|h))+\s*$|^\s*\d+(\.\d+)?\s*$")
SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*([bkmg]i?b?)?$", re.I)
RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")

TOP_FIELDS = ("name", "services", "volumes", "networks", "version")
SERVICE_FIELDS = ("image", "build", "command", "entrypoint", "environment", "env_file",
                  "ports", "expose", "volumes", "depends_on", "healthcheck", "restart",
                  "user", "working_dir", "hostname", "db_mode", "data", "shm_size",
                  "mem_limit", "cpus", "networks")


def project_from(raw, src: Source, file: str, name: str | None) -> Project:
    """``file``: the compose file's absolute path; ``name``: -p (else ``name:``, else the
    file's directory)."""
    if not isinstance(raw, dict):
        raise src.error("", "the top level must be a mapping",
                        hint="start with `services:`")
    _known(raw, "", TOP_FIELDS, src)
    workdir = os.path.dirname(file)
    pname = _project_name(name, raw.get("name"), workdir, src)
    services_raw = raw.get("services")
    if not isinstance(services_raw, dict) or not services_raw:
        raise src.error("services" if "services" in raw else "",
                        "a mapping of services is required", hint="services:\n  web:\n    image: busybox")
    volumes = _top(raw, "volumes", pname, src, NamedVolume)
    from minibox.compose.network_schema import top_networks      # it uses our helpers
    networks = top_networks(raw, pname, src)
    services = {}
    for sname, body in services_raw.items():
        where = child("services", sname)
        if not SERVICE_RE.match(sname):
            raise src.error(where, f"invalid service name {sname!r}",
                            hint="letters, digits, _ . - (starting with a letter or digit)")
        services[sname] = _service(sname, body, where, src, workdir, volumes, networks)
    for sname, svc in services.items():
        for i, dep in enumerate(svc.depends_on):
            if dep not in services:
                where = _dep_where(raw, sname, dep, i)
                raise src.error(where, f"depends on {dep!r}, which is not a service of this file",
                                hint=_did_you_mean(dep, services) or
                                "services: " + ", ".join(services))
    return Project(pname, file, workdir, services, volumes, networks, dict(src.lines))


def _dep_where(raw, sname: str, dep: str, i: int) -> str:
    deps = raw["services"][sname].get("depends_on")
    base = f"services.{sname}.depends_on"
    return child(base, dep) if isinstance(deps, dict) else child(base, i)


def _project_name(given, in_file, workdir: str, src: Source) -> str:
    if given:
        name = given
        if not PROJECT_RE.match(name):
            raise src.error("", f"invalid project name {name!r} (-p)",
                            hint="lowercase letters, digits, _ and -, starting with a letter or digit")
        return name
    if in_file is not None:
        if not isinstance(in_file, str) or not PROJECT_RE.match(in_file):
            raise src.error("name", f"invalid project name {in_file!r}",
                            hint="lowercase letters, digits, _ and -, starting with a letter or digit")
        return in_file
    name = re.sub(r"[^a-z0-9_-]", "", os.path.basename(workdir).lower()).lstrip("_-")
    if not name:
        raise src.error("", f"cannot make a project name from the directory {workdir!r}",
                        hint="set `name:` in the file or give -p NAME")
    return name


def _top(raw, key: str, pname: str, src: Source, cls,
         allowed=("name", "external", "labels", "driver")):
    out = {}
    section = raw.get(key)
    if section is None:
        return out
    if not isinstance(section, dict):
        raise src.error(key, "expected a mapping of names", hint=f"{key}:\n  data: {{}}")
    for k, body in section.items():
        where = child(key, k)
        if not KEY_RE.match(k):
            raise src.error(where, f"invalid name {k!r}", hint="letters, digits, _ . -")
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise src.error(where, "expected a mapping (or nothing)")
        _known(body, where, allowed, src)
        ext = body.get("external", False)
        if not isinstance(ext, bool):
            raise src.error(child(where, "external"), "expected true or false")
        name = body.get("name") or (k if ext else f"{pname}_{k}")
        if not isinstance(name, str) or not KEY_RE.match(name):
            raise src.error(child(where, "name"), f"invalid name {name!r}")
        out[k] = cls(k, name, ext)
    return out


def _service(sname: str, body, where: str, src: Source, workdir: str,
             volumes: dict, networks: dict) -> Service:
    if not isinstance(body, dict):
        raise src.error(where, "expected a mapping of service fields", hint="image: busybox")
    _known(body, where, SERVICE_FIELDS, src)
    f = _Fields(body, where, src)
    svc = Service(sname)
    svc.image = f.string("image")
    svc.build = _build(body.get("build"), child(where, "build"), src, workdir)
    if not svc.image and not svc.build:
        raise src.error(where, "has neither `image` nor `build`",
                        hint="give the image to run, or a build directory")
    svc.command = f.argv("command")
    svc.entrypoint = f.argv("entrypoint")
    svc.environment = _env_files(body.get("env_file"), child(where, "env_file"), src, workdir)
    svc.environment += _environment(body.get("environment"), child(where, "environment"), src)
    svc.ports = [_port(p, child(child(where, "ports"), i), src)
                 for i, p in enumerate(f.list("ports"))]
    svc.expose = [_expose(p, child(child(where, "expose"), i), src)
                  for i, p in enumerate(f.list("expose"))]
    svc.volumes = [_volume(v, child(child(where, "volumes"), i), src, workdir, volumes)
                   for i, v in enumerate(f.list("volumes"))]
    svc.depends_on = _depends(body.get("depends_on"), child(where, "depends_on"), src, sname)
    svc.healthcheck = _healthcheck(body.get("healthcheck"), child(where, "healthcheck"), src)
    restart = body.get("restart", "no")
    restart = "no" if restart is False else restart      # YAML 1.1: a bare `no` is false
    if not isinstance(restart, str) or not RESTART_RE.match(restart):
        raise src.error(child(where, "restart"), f"invalid restart policy {restart!r}",
                        hint="no, always, unless-stopped or on-failure[:MAX_RETRIES]")
    svc.restart = restart
    svc.user = f.string("user", scalar=True)
    svc.working_dir = f.string("working_dir")
    if svc.working_dir is not None and not svc.working_dir.startswith("/"):
        raise src.error(child(where, "working_dir"), "must be an absolute path")
    svc.hostname = f.string("hostname")
    svc.db_mode = f.boolean("db_mode")
    svc.data = f.string("data")
    if svc.data is not None:
        if not svc.db_mode:
            raise src.error(child(where, "data"), "needs `db_mode: true`",
                            hint="`data` is the database's data directory of db_mode")
        if not svc.data.startswith("/"):
            raise src.error(child(where, "data"), "must be an absolute container path")
    svc.shm_size = f.size("shm_size")
    svc.mem_limit = f.size("mem_limit")
    svc.cpus = f.number("cpus")
    from minibox.compose.network_schema import service_networks
    svc.networks, svc.aliases = service_networks(body.get("networks"),
                                                 child(where, "networks"), src, networks)
    return svc


class _Fields:
    """Typed reads of a service's fields, each error at its own path."""

    def __init__(self, body: dict, where: str, src: Source):
        self.body, self.where, self.src = body, where, src

    def _err(self, key, msg, hint=None):
        return self.src.error(child(self.where, key), msg, hint)

    def string(self, key: str, scalar: bool = False) -> str | None:
        v = self.body.get(key)
        if v is None:
            return None
        if scalar and isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if not isinstance(v, str) or not v:
            raise self._err(key, f"expected a non-empty string, not {_kind(v)}")
        return v

    def boolean(self, key: str) -> bool:
        v = self.body.get(key, False)
        if not isinstance(v, bool):
            raise self._err(key, f"expected true or false, not {_kind(v)}")
        return v

    def number(self, key: str) -> float | None:
        v = self.body.get(key)
        if v is None:
            return None
        try:
            n = float(v) if not isinstance(v, bool) else None
        except ValueError:
            n = None
        if n is None or n <= 0:
            raise self._err(key, f"expected a positive number, not {v!r}", hint="e.g. 0.5")
        return n

    def size(self, key: str) -> str | None:
        v = self.body.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not SIZE_RE.match(str(v).strip()):
            raise self._err(key, f"expected a size, not {v!r}", hint="e.g. 256m, 1g, 64mb")
        return str(v).strip() if not isinstance(v, int) else f"{v}b"

    def list(self, key: str) -> list:
        v = self.body.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self._err(key, f"expected a list, not {_kind(v)}")
        return v

    def argv(self, key: str) -> list[str] | None:
        v = self.body.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            try:
                return shlex.split(v)
            except ValueError as e:
                raise self._err(key, f"cannot split the command: {e}",
                                hint="check the quotes, or give a list") from None
        if isinstance(v, list):
            for i, a in enumerate(v):
                if isinstance(a, bool) or not isinstance(a, (str, int, float)):
                    raise self.src.error(child(child(self.where, key), i),
                                         f"expected a string, not {_kind(a)}")
            return [str(a) for a in v]
        raise self._err(key, f"expected a string or a list of strings, not {_kind(v)}")


def _kind(v) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "nothing"}.get(type(v), type(v).__name__)


def _known(body: dict, where: str, allowed, src: Source) -> None:
    for key in body:
        if key in allowed or str(key).startswith("x-"):
            continue
        raise src.error(child(where, key), "unknown field",
                        hint=_did_you_mean(key, allowed) or "known: " + ", ".join(allowed))


def _did_you_mean(word: str, choices) -> str | None:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _build(v, where: str, src: Source, workdir: str) -> Build | None:
    if v is None:
        return None
    mbfile = None
    if isinstance(v, dict):
        _known(v, where, ("context", "minibox_file"), src)
        ctx = v.get("context")
        mbfile = v.get("minibox_file")
        if mbfile is not None and (not isinstance(mbfile, str) or not mbfile):
            raise src.error(child(where, "minibox_file"), "expected a file name")
        at = child(where, "context")
    else:
        ctx, at = v, where
    if not isinstance(ctx, str) or not ctx:
        raise src.error(at, "expected a directory", hint="build: ./web  (or context: ./web)")
    path = os.path.normpath(os.path.join(workdir, os.path.expanduser(ctx)))
    if not os.path.isdir(path):
        raise src.error(at, f"the build context {ctx!r} is not a directory ({path})",
                        hint="paths are relative to the compose file's directory")
    mb = os.path.normpath(os.path.join(path, mbfile or "MiniBox"))
    if not os.path.isfile(mb):
        raise src.error(child(where, "minibox_file") if mbfile else at,
                        f"no MiniBox file at {mb}",
                        hint="add one, or name it with `minibox_file:`")
    return Build(path, mb)


def _environment(v, where: str, src: Source) -> list[str]:
    if v is None:
        return []
    out = []
    if isinstance(v, dict):
        for k, val in v.items():
            if val is None:
                if k in os.environ:                 # `KEY:` takes it from the caller's env
                    out.append(f"{k}={os.environ[k]}")
                continue
            if isinstance(val, (dict, list)):
                raise src.error(child(where, k), f"expected a string or number, not {_kind(val)}")
            out.append(f"{k}={_scalar(val)}")
        return out
    if isinstance(v, list):
        for i, item in enumerate(v):
            if not isinstance(item, str) or not item or item.startswith("="):
                raise src.error(child(where, i), f"expected KEY=VALUE, not {item!r}")
            if "=" not in item:
                if item in os.environ:
                    out.append(f"{item}={os.environ[item]}")
                continue
            out.append(item)
        return out
    raise src.error(where, f"expected a list of KEY=VALUE or a mapping, not {_kind(v)}")


def _scalar(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _env_files(v, where: str, src: Source, workdir: str) -> list[str]:
    files = [v] if isinstance(v, str) else v if v is not None else []
    if not isinstance(files, list):
        raise src.error(where, "expected a file name or a list of them")
    out = []
    for i, name in enumerate(files):
        at = child(where, i) if isinstance(v, list) else where
        if not isinstance(name, str) or not name:
            raise src.error(at, "expected a file name")
        path = os.path.join(workdir, os.path.expanduser(name))
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()
        except OSError as e:
            raise src.error(at, f"cannot read the env file {path}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line or line.startswith("="):
                raise src.error(at, f"{path}:{n}: expected KEY=VALUE, not {line!r}")
            out.append(line)
    return out


def _port(v, where: str, src: Source) -> str:
    text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
    m = PORT_RE.match(text) if isinstance(text, str) else None
    ok = m and all(0 < int(p) < 65536 for p in (m.group(2), m.group(3)) if p)
    if not ok:
        raise src.error(where, f"invalid port mapping {v!r}",
                        hint='"HOST:CONTAINER", "IP:HOST:CONTAINER" or "CONTAINER", '
                             'optionally /tcp or /udp (quote it: YAML reads 80:80 as a number)')
    return text


def _expose(v, where: str, src: Source) -> str:
    text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if not isinstance(text, str) or not re.fullmatch(r"\d{1,5}(/(tcp|udp))?", text) \
            or not 0 < int(text.split("/")[0]) < 65536:
        raise src.error(where, f"invalid port {v!r}", hint="a port number, e.g. 8080 or 53/udp")
    return text


def _volume(v, where: str, src: Source, workdir: str, volumes: dict) -> VolumeMount:
    if isinstance(v, dict):
        _known(v, where, ("type", "source", "target", "read_only"), src)
        kind, source, target = v.get("type", "volume"), v.get("source") or "", v.get("target")
        ro = v.get("read_only", False)
        if kind not in ("bind", "volume", "tmpfs") or not isinstance(ro, bool):
            raise src.error(where, f"invalid volume type {kind!r}", hint="bind, volume or tmpfs")
    elif isinstance(v, str):
        parts = v.split(":")
        ro = False
        if len(parts) == 3 or (len(parts) == 2 and parts[1] in ("ro", "rw")):
            mode = parts.pop()
            if mode not in ("ro", "rw"):
                raise src.error(where, f"invalid volume mode {mode!r} in {v!r}", hint="ro or rw")
            ro = mode == "ro"
        if len(parts) == 1:
            parts.insert(0, "")
        if len(parts) != 2:
            raise src.error(where, f"invalid volume {v!r}",
                            hint="SOURCE:TARGET[:ro], NAME:TARGET[:ro] or TARGET")
        source, target = parts
        kind = "volume" if not source or not source.startswith((".", "/", "~")) else "bind"
    else:
        raise src.error(where, f"expected a string or a mapping, not {_kind(v)}")
    if not isinstance(target, str) or not target.startswith("/"):
        raise src.error(where, f"the container path {target!r} must be absolute")
    if kind == "bind":
        path = os.path.normpath(os.path.join(workdir, os.path.expanduser(source)))
        if not os.path.exists(path):
            raise src.error(where, f"the bind source {path} does not exist",
                            hint="create it; relative paths start at the compose file's directory")
        return VolumeMount("bind", path, target, ro)
    if kind == "tmpfs":
        return VolumeMount("tmpfs", "", target, ro)
    if not source:
        return VolumeMount("anonymous", "", target, ro)
    if source not in volumes:
        raise src.error(where, f"the volume {source!r} is not declared in the top-level `volumes`",
                        hint=f"add it:  volumes:\\n  {source}: {{}}")
    return VolumeMount("volume", source, target, ro)


def _depends(v, where: str, src: Source, sname: str) -> dict[str, str]:
    if v is None:
        return {}
    out = {}
    if isinstance(v, list):
        for i, dep in enumerate(v):
            if not isinstance(dep, str):
                raise src.error(child(where, i), f"expected a service name, not {_kind(dep)}")
            out[dep] = "service_started"
    elif isinstance(v, dict):
        for dep, body in v.items():
            at = child(where, dep)
            cond = (body or {}).get("condition", "service_started") if isinstance(body, (dict, type(None))) else None
            if isinstance(body, dict):
                _known(body, at, ("condition", "restart", "required"), src)
            if cond not in CONDITIONS:
                raise src.error(child(at, "condition") if isinstance(body, dict) else at,
                                f"invalid condition {cond!r}", hint=", ".join(CONDITIONS))
            out[dep] = cond
    else:
        raise src.error(where, f"expected a list of services or a mapping, not {_kind(v)}")
    if sname in out:
        raise src.error(where, f"service {sname!r} depends on itself")
    return out


def _healthcheck(v, where: str, src: Source) -> Healthcheck | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise src.error(where, f"expected a mapping, not {_kind(v)}", hint="test: [CMD, ...]")
    _known(v, where, ("test", "interval", "timeout", "retries", "start_period", "disable"), src)
    if v.get("disable") is True:
        return Healthcheck(None)
    test = v.get("test")
    if isinstance(test, str):
        argv = ["/bin/sh", "-c", test]
    elif isinstance(test, list) and test and all(isinstance(t, str) for t in test):
        head, rest = test[0], test[1:]
        if head == "NONE":
            return Healthcheck(None)
        if head == "CMD" and rest:
            argv = rest
        elif head == "CMD-SHELL" and len(rest) == 1:
            argv = ["/bin/sh", "-c", rest[0]]
        else:
            raise src.error(child(where, "test"), f"invalid test {test!r}",
                            hint='["CMD", "prog", "arg"], ["CMD-SHELL", "command"] or a string')
    else:
        raise src.error(child(where, "test"), "expected a command (a string or a list)",
                        hint='test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1/"]')
    hc = Healthcheck(argv)
    for key in ("interval", "timeout", "start_period"):
        d = v.get(key)
        if d is not None:
            if not isinstance(d, (str, int, float)) or isinstance(d, bool) or \
                    not DURATION_RE.match(str(d)):
                raise src.error(child(where, key), f"invalid duration {d!r}", hint="e.g. 5s, 500ms, 1m30s")
            setattr(hc, key, str(d))
    r = v.get("retries")
    if r is not None:
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise src.error(child(where, "retries"), f"expected a positive whole number, not {r!r}")
        hc.retries = r
    return hc


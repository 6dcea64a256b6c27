"""Argument parsers for single MiniBox directives.

Each function takes the text after the keyword (``rest``, verbatim) and the line number and
returns model objects, or raises ``DirectiveError`` (message + hint); the parser turns that
into a ``ParseError`` with the file, line and source text.  Nothing here knows about blocks
or about other lines.
"""

from __future__ import annotations

import json
import re
import shlex

from minibox.mbfile.lines import show
from minibox.mbfile.model import Copy, Env, Healthcheck, Pkg, Port, Run, User, Volume, Workdir

BLOCK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PKG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:~=/-]*(@[A-Za-z0-9_.+:~=*-]+)?\Z")
_PORT = re.compile(r"([0-9]{1,5})(?:/([A-Za-z]+))?\Z")
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?\Z")
_OPTION = re.compile(r"--([A-Za-z-]*)(?:=(\S*))?\Z")
_FROM = re.compile(r"(?:--)?from=(\S*)\Z", re.I)
_COMMENT_HINT = ("a '#' is part of an ENV value or a JSON array; put the comment on a line "
                 "of its own")
HEALTH_OPTIONS = ("interval", "timeout", "retries", "start-period")


class DirectiveError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def q(text: str) -> str:
    """Quote user text for a message."""
    return "'" + show(text, 60) + "'"


def require(rest: str, keyword: str, usage: str) -> str:
    if not rest:
        raise DirectiveError(f"{keyword} needs an argument", hint=f"write it as: {usage}")
    return rest


def one_arg(rest: str, keyword: str, usage: str) -> str:
    args = require(rest, keyword, usage).split()
    if len(args) != 1:
        hint = _COMMENT_HINT if args[1].startswith("#") else f"write it as: {usage}"
        raise DirectiveError(f"{keyword} takes exactly one argument, got {len(args)}", hint=hint)
    return args[0]


def block_name(name: str, keyword: str) -> str:
    if not BLOCK_NAME.match(name):
        hint = (_COMMENT_HINT if name.startswith("#") else
                "block names start with a letter or digit and contain only letters, digits, "
                "'_', '.' and '-'")
        raise DirectiveError(f"{keyword}: {q(name)} is not a valid block name", hint=hint)
    return name


def block_names(rest: str, keyword: str) -> list[str]:
    """NEED/BNEED: one or more block names."""
    args = require(rest, keyword, f"{keyword} <block> [<block>...]").split()
    return [block_name(a, keyword) for a in args]


def exec_form(rest: str, keyword: str) -> tuple[str, ...] | None:
    """The JSON-array form of ``rest``, or None when ``rest`` is shell form.

    ``rest`` is JSON form when it starts with ``[`` and either ends with ``]`` or starts
    with ``["`` (so ``[ -f x ] && y`` stays a shell command)."""
    if not (rest.startswith("[") and (rest.endswith("]") or rest.startswith('["'))):
        return None
    example = f'for example: {keyword} ["a", "b"]'
    try:
        value = json.loads(rest)
    except (ValueError, RecursionError) as exc:
        raise DirectiveError(f"{keyword}: malformed JSON array: {show(str(exc), 80)}",
                             hint=example) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DirectiveError(f"{keyword}: the JSON form must be an array of strings", hint=example)
    if not value or not value[0]:
        raise DirectiveError(f"{keyword}: the JSON array must not be empty or start with \"\"",
                             hint=example)
    return tuple(value)


def command(rest: str, keyword: str) -> tuple[str, ...]:
    """START/HEALTHCHECK command: exec form as written, shell form via /bin/sh -c."""
    require(rest, keyword, f"{keyword} <command> [args...]")
    argv = exec_form(rest, keyword)
    return argv if argv is not None else ("/bin/sh", "-c", rest)


def run(rest: str, line: int) -> Run:
    require(rest, "RUN", "RUN <shell command>")
    argv = exec_form(rest, "RUN")
    if argv is None:
        return Run(command=rest, line=line)
    return Run(command=shlex.join(argv), line=line, argv=argv)


def duration(value: str, option: str) -> int:
    """Seconds from ``30``, ``30s``, ``1m30s``, ``2h``."""
    m = _DURATION.match(value)
    if value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    if not value or not m or len(value) > 20:
        raise DirectiveError(f"HEALTHCHECK: --{option}={show(value, 40)} is not a duration",
                             hint="use whole seconds (30) or a duration like 30s, 1m30s, 1h")
    h, mins, s = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mins * 60 + s


def healthcheck(rest: str, line: int) -> Healthcheck:
    values = {"interval": 30, "timeout": 30, "retries": 3, "start-period": 0}
    usage = ("HEALTHCHECK [--interval=30s] [--timeout=30s] [--retries=3] [--start-period=0s] "
             "<command>")
    rest = require(rest, "HEALTHCHECK", usage)
    while rest.startswith("--"):
        token, rest = (rest.split(None, 1) + [""])[:2]
        name, value = _health_option(token)
        values[name] = _health_value(name, value)
    if not rest:
        raise DirectiveError("HEALTHCHECK needs a command after its options",
                             hint=f"write it as: {usage}")
    return Healthcheck(argv=command(rest, "HEALTHCHECK"), interval=values["interval"],
                       timeout=values["timeout"], retries=values["retries"],
                       start_period=values["start-period"], line=line)


def _health_option(token: str) -> tuple[str, str]:
    m = _OPTION.match(token)
    name = m.group(1).lower() if m else ""
    if name not in HEALTH_OPTIONS:
        raise DirectiveError(f"HEALTHCHECK: unknown option {q(token)}",
                             hint="options are " + ", ".join(f"--{o}=" for o in HEALTH_OPTIONS))
    if m.group(2) is None or m.group(2) == "":
        raise DirectiveError(f"HEALTHCHECK: --{name} needs a value",
                             hint=f"write it as --{name}=<value>, e.g. --{name}=" +
                                  ("3" if name == "retries" else "30s"))
    return name, m.group(2)


def _health_value(name: str, value: str) -> int:
    if name == "retries":
        if not (value.isascii() and value.isdigit() and len(value) < 10) or int(value) < 1:
            raise DirectiveError(f"HEALTHCHECK: --retries={show(value, 40)} is not a positive "
                                 "whole number", hint="for example --retries=3")
        return int(value)
    seconds = duration(value, name)
    if name != "start-period" and seconds < 1:
        raise DirectiveError(f"HEALTHCHECK: --{name} must be at least 1 second",
                             hint=f"for example --{name}=30s")
    return seconds


def env(rest: str, line: int) -> Env:
    usage = "ENV KEY=VALUE [KEY2=VALUE2...] or ENV KEY value with spaces"
    rest = require(rest, "ENV", usage)
    first = rest.split(None, 1)
    if "=" not in first[0]:
        if len(first) < 2:
            raise DirectiveError(f"ENV {show(first[0], 40)} has no value", hint=f"write {usage}")
        return Env(items=((env_key(first[0]), first[1]),), line=line)
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise DirectiveError(f"ENV: {str(exc).lower()}",
                             hint="close the quote, or escape it with a backslash") from None
    items = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            hint = (_COMMENT_HINT if word.startswith("#") else
                    'in the KEY=VALUE form every word is KEY=VALUE; quote values that contain '
                    'spaces: KEY="a b"')
            raise DirectiveError(f"ENV: {q(word)} is not KEY=VALUE", hint=hint)
        items.append((env_key(key), value))
    return Env(items=tuple(items), line=line)


def env_key(key: str) -> str:
    if not _ENV_KEY.match(key):
        raise DirectiveError(f"ENV: {q(key)} is not a valid variable name",
                             hint="names are letters, digits and '_', not starting with a digit")
    return key


def copy(rest: str, line: int) -> Copy:
    usage = "COPY [FROM=<block>] <src>... <dest>"
    rest = require(rest, "COPY", usage)
    from_block = None
    head, tail = (rest.split(None, 1) + [""])[:2]
    m = _FROM.match(head)
    if m:
        from_block = block_name(m.group(1), "COPY FROM=") if m.group(1) else None
        if from_block is None:
            raise DirectiveError("COPY FROM= needs a block name", hint=f"write it as: {usage}")
        rest = tail
    args = exec_form(rest, "COPY") if rest else None
    if args is None:
        args = tuple(rest.split())
    if not all(args):
        raise DirectiveError("COPY: empty path in the JSON array", hint=f"write it as: {usage}")
    if len(args) < 2:
        raise DirectiveError(f"COPY needs a source and a destination, got {len(args)} argument"
                             + ("" if len(args) == 1 else "s"), hint=f"write it as: {usage}")
    return Copy(sources=tuple(args[:-1]), dest=args[-1], line=line, from_block=from_block)


def workdir(rest: str, line: int) -> Workdir:
    return Workdir(path=one_arg(rest, "WORKDIR", "WORKDIR <path>"), line=line)


def user(rest: str, line: int) -> User:
    name = one_arg(rest, "USER", "USER <name|uid>[:<group|gid>]")
    if name.count(":") > 1 or name.startswith(":") or name.endswith(":"):
        raise DirectiveError(f"USER: {q(name)} is not a user", hint="write USER name, uid, "
                             "name:group or uid:gid")
    return User(user=name, line=line)


def pkg(rest: str, line: int) -> Pkg:
    names = require(rest, "PKG", "PKG <name>[@<version>] ...").split()
    for name in names:
        if not _PKG.match(name):
            hint = (_COMMENT_HINT if name.startswith("#") else
                    "package names are like curl or git@2.40.1; use RUN for anything else")
            raise DirectiveError(f"PKG: {q(name)} is not a package name", hint=hint)
    return Pkg(packages=tuple(names), line=line)


def ports(rest: str, line: int) -> list[Port]:
    out = []
    for word in require(rest, "PORT", "PORT <number>[/tcp|/udp] ...").split():
        m = _PORT.match(word)
        proto = (m.group(2) or "tcp").lower() if m else ""
        if not m or proto not in ("tcp", "udp") or not 1 <= int(m.group(1)) <= 65535:
            hint = (_COMMENT_HINT if word.startswith("#") else
                    "a port is a number from 1 to 65535, optionally /tcp or /udp: PORT 8080/tcp")
            raise DirectiveError(f"PORT: {q(word)} is not a port", hint=hint)
        out.append(Port(port=int(m.group(1)), proto=proto, line=line))
    return out


def volumes(rest: str, line: int) -> list[Volume]:
    rest = require(rest, "VOLUME", "VOLUME <absolute path> ...")
    paths = exec_form(rest, "VOLUME") or tuple(rest.split())
    for p in paths:
        if not p.startswith("/"):
            hint = (_COMMENT_HINT if p.startswith("#") else
                    "volumes are absolute paths: VOLUME /data")
            raise DirectiveError(f"VOLUME: {q(p)} is not an absolute path", hint=hint)
    return [Volume(path=p, line=line) for p in paths]

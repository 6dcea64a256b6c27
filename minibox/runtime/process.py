"""The container's process: argv, environment, working dir and user, from spec + image."""

from __future__ import annotations

from minibox.errors import UserError
from minibox.runtime.images import ResolvedImage, read_image_file

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def argv(spec, image: ResolvedImage) -> list[str]:
    cfg = image.config
    entry = spec.entrypoint if spec.entrypoint is not None else list(cfg.get("Entrypoint") or [])
    if spec.command:
        cmd = list(spec.command)
    elif spec.entrypoint is not None:
        cmd = []
    else:
        cmd = list(cfg.get("Cmd") or [])
    out = entry + cmd
    if not out:
        raise UserError(f"no command given and image '{spec.image}' has no default command",
                        hint=f"minibox run {spec.image} COMMAND...")
    return out


def environment(spec, image: ResolvedImage, hostname: str, home: str) -> list[str]:
    env: dict[str, str] = {}
    for item in list(image.config.get("Env") or []) + list(spec.env):
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = hostname
    env.setdefault("HOME", home)
    if spec.tty:
        env.setdefault("TERM", "xterm")
    return [f"{k}={v}" for k, v in env.items()]


def user(spec, image: ResolvedImage) -> tuple[int, int, list[int], str]:
    """(uid, gid, supplementary gids, home) for ``--user`` or the image's User."""
    text = (spec.user if spec.user is not None else image.config.get("User") or "").strip()
    if not text:
        text = "0"
    name, _, group = text.partition(":")
    passwd = _table(read_image_file(image.layers, "/etc/passwd"))
    groups = _table(read_image_file(image.layers, "/etc/group"))
    entry = _find(passwd, name)
    if entry is None and not name.isdigit():
        raise UserError(f"unable to find user {name}: no matching entries in the image's "
                        "/etc/passwd", hint="use a numeric uid, or a user the image defines")
    uid = int(name) if name.isdigit() else int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else ("/root" if uid == 0 else "/")
    if group:
        g = _find(groups, group)
        if g is None and not group.isdigit():
            raise UserError(f"unable to find group {group}: no matching entries in the "
                            "image's /etc/group")
        gid = int(group) if group.isdigit() else int(g[2])
    login = entry[0] if entry else None
    extra = sorted({int(g[2]) for g in groups if login and len(g) > 3 and g[2].isdigit()
                    and login in g[3].split(",") and int(g[2]) != gid})
    return uid, gid, extra, home


def _table(text: str | None) -> list[list[str]]:
    return [ln.split(":") for ln in (text or "").splitlines() if ln and not ln.startswith("#")]


def _find(rows: list[list[str]], key: str):
    for row in rows:
        if len(row) > 3 and (row[0] == key or (key.isdigit() and row[2] == key)):
            return row
    return None

"""The container's process: argv, environment, working dir and user, from spec + image."""

from __future__ import annotations

from minibox import accounts
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
    """(uid, gid, supplementary gids, home) for ``--user`` or the image's User
    (minibox.accounts' rules)."""
    text = (spec.user if spec.user is not None else image.config.get("User") or "").strip()
    try:
        a = accounts.resolve(text or "0", read_image_file(image.layers, "/etc/passwd"),
                             read_image_file(image.layers, "/etc/group"))
    except accounts.UnknownName as e:
        if e.kind == "group":
            raise UserError(f"unable to find group {e.name}: no matching entries in the "
                            "image's /etc/group") from None
        raise UserError(f"unable to find user {e.name}: no matching entries in the image's "
                        "/etc/passwd", hint="use a numeric uid, or a user the image defines") \
            from None
    except accounts.IdOutOfRange as e:
        raise UserError(f"invalid --user {text!r}: {e}") from None
    home = a.home or ("/root" if a.uid == 0 else "/")
    return a.uid, a.gid, sorted({g for g in a.memberships if g != a.gid}), home

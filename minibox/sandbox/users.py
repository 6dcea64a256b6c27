"""USER resolution against the image's own /etc/passwd and /etc/group (never the host's):
minibox.accounts' rules, this module's errors (a BuildFailed naming the Minibox file's line).

Forms: ``""`` (root), ``name``, ``uid``, ``name:group``, ``uid:gid`` and the mixes.  A numeric
uid needs no passwd entry (its gid is then 0, as in Docker).  Without an explicit group the
supplementary groups are the user's memberships in /etc/group; with one, only that group.
An unknown name is an error naming the line, never a silent fall-back to root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minibox import accounts
from minibox.errors import BuildFailed
from minibox.sandbox import rootfs

MAX_ID = accounts.MAX_ID


@dataclass(frozen=True)
class Creds:
    uid: int
    gid: int
    groups: tuple[int, ...] = field(default=())
    name: str | None = None
    home: str | None = None


def resolve_user(root: str, spec: str | None, line: int) -> Creds:
    """Credentials for ``spec`` inside the image at ``root``; BuildFailed if unknown."""
    try:
        a = accounts.resolve(spec, _read(root, "/etc/passwd"), _read(root, "/etc/group"))
    except accounts.UnknownName as e:
        if e.kind == "group":
            raise BuildFailed(f"line {line}: group '{e.name}' does not exist in the image's "
                              "/etc/group") from None
        raise BuildFailed(f"line {line}: USER '{e.name}' does not exist in the image's "
                          "/etc/passwd",
                          hint="create it in an earlier RUN (adduser/useradd) or use a "
                               "numeric uid") from None
    except accounts.IdOutOfRange as e:
        raise BuildFailed(f"line {line}: {e}") from None
    # with a group given, only that group; else the primary one and the user's memberships
    groups = (a.gid,) if a.explicit_group else tuple(dict.fromkeys((a.gid, *a.memberships)))
    home = None if a.home is None else (a.home or "/")
    return Creds(a.uid, a.gid, groups, a.name, home)


def _read(root: str, path: str) -> str | None:
    try:
        with open(rootfs.resolve(root, path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None

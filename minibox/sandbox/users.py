"""USER resolution against the image's own /etc/passwd and /etc/group (never the host's).

Forms: ``""`` (root), ``name``, ``uid``, ``name:group``, ``uid:gid`` and the mixes.  A numeric
uid needs no passwd entry (its gid is then 0, as in Docker).  Without an explicit group the
supplementary groups are the user's memberships in /etc/group; with one, only that group.
An unknown name is an error naming the line, never a silent fall-back to root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minibox.errors import BuildFailed
from minibox.sandbox import rootfs

MAX_ID = 2**32 - 2


@dataclass(frozen=True)
class Creds:
    uid: int
    gid: int
    groups: tuple[int, ...] = field(default=())
    name: str | None = None
    home: str | None = None


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def resolve_user(root: str, spec: str | None, line: int) -> Creds:
    """Credentials for ``spec`` inside the image at ``root``; BuildFailed if unknown."""
    spec = (spec or "").strip() or "root"
    user, _, group = spec.partition(":")
    passwd = _read_passwd(root)
    if _numeric(user):
        uid = _parse_id(user, "uid", line)
        entry = next((p for p in passwd if p.uid == uid), None)
    else:
        entry = next((p for p in passwd if p.name == user), None)
        if entry is None:
            if user == "root":
                entry = _Passwd("root", 0, 0, "/root")
            else:
                raise BuildFailed(f"line {line}: USER '{user}' does not exist in the image's "
                                  "/etc/passwd",
                                  hint="create it in an earlier RUN (adduser/useradd) or use a "
                                       "numeric uid")
        uid = entry.uid
    gid = entry.gid if entry else 0
    groups_db = _read_group(root)
    if group:
        gid = _group_id(groups_db, group, line)
        return Creds(uid, gid, (gid,), entry.name if entry else None,
                     entry.home if entry else None)
    extra = [g.gid for g in groups_db if entry and entry.name in g.members and g.gid != gid]
    groups = tuple(dict.fromkeys([gid] + extra))
    return Creds(uid, gid, groups, entry.name if entry else None, entry.home if entry else None)


def _group_id(groups_db: list[_Group], group: str, line: int) -> int:
    if _numeric(group):
        return _parse_id(group, "gid", line)
    for g in groups_db:
        if g.name == group:
            return g.gid
    raise BuildFailed(f"line {line}: group '{group}' does not exist in the image's /etc/group")


def _numeric(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _parse_id(s: str, what: str, line: int) -> int:
    v = int(s)
    if v > MAX_ID:
        raise BuildFailed(f"line {line}: {what} {s} is out of range (0..{MAX_ID})")
    return v


def _read_lines(root: str, path: str) -> list[list[str]]:
    try:
        with open(rootfs.resolve(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw and not raw.startswith(("#", "+", "-")):
            out.append(raw.split(":"))
    return out


def _read_passwd(root: str) -> list[_Passwd]:
    out = []
    for f in _read_lines(root, "/etc/passwd"):
        if len(f) >= 4 and _numeric(f[2]) and _numeric(f[3]):
            out.append(_Passwd(f[0], int(f[2]), int(f[3]), f[5] if len(f) > 5 else "/"))
    return out


def _read_group(root: str) -> list[_Group]:
    out = []
    for f in _read_lines(root, "/etc/group"):
        if len(f) >= 3 and _numeric(f[2]):
            members = tuple(m.strip() for m in (f[3] if len(f) > 3 else "").split(",") if m)
            out.append(_Group(f[0], int(f[2]), members))
    return out

"""A user spec (``USER``, ``--user``) against an image's own /etc/passwd and /etc/group.

The one resolver: the build's sandbox (``sandbox.users``) and the runtime
(``runtime.process``) read the two files their own way (a rootfs, or the layers) and turn
the errors into their own (a BuildFailed naming the line, a UserError); the rules are here.

Forms: ``""`` (root), ``name``, ``uid``, ``name:group``, ``uid:gid`` and the mixes.  A name
or uid is looked up in one pass (the first entry whose name, or for a number whose uid,
matches: as runc does); a numeric uid needs no entry (its gid is then 0, as in Docker), nor
does ``root``.  An unknown name is an error, never a silent fall-back to root.  Never the
host's files.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Account", "MAX_ID", "UnknownName", "IdOutOfRange", "resolve"]

MAX_ID = 2**32 - 2


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int                        # the group given, or the user's primary group
    explicit_group: bool            # a group was given (user:group)
    memberships: tuple[int, ...]    # gids of the groups listing the user, in file order
    name: str | None = None         # None: a numeric uid without an entry
    home: str | None = None         # None: no entry; "" an entry without one


class UnknownName(LookupError):
    """A user or group name the image does not define."""

    def __init__(self, kind: str, name: str):
        super().__init__(f"{kind} {name!r} does not exist in the image")
        self.kind, self.name = kind, name       # kind: "user" or "group"


class IdOutOfRange(ValueError):
    def __init__(self, kind: str, text: str):
        super().__init__(f"{kind} {text} is out of range (0..{MAX_ID})")
        self.kind, self.text = kind, text       # kind: "uid" or "gid"


def resolve(spec: str | None, passwd: str | None, group: str | None) -> Account:
    """``spec`` against the texts of /etc/passwd and /etc/group (None: the file is absent)."""
    spec = (spec or "").strip() or "root"
    user, _, grp = spec.partition(":")
    numeric = _numeric(user)
    uid = _id(user, "uid") if numeric else None
    entries = [e for e in _rows(passwd, 4) if _numeric(e[2]) and _numeric(e[3])]
    entry = next((e for e in entries if e[0] == user or (numeric and int(e[2]) == uid)), None)
    if entry is None and not numeric:
        if user != "root":
            raise UnknownName("user", user)
        entry = ["root", "x", "0", "0", "", "/root"]
    if entry is not None:
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None else 0
    groups = [g for g in _rows(group, 3) if _numeric(g[2])]
    if grp:
        if _numeric(grp):
            gid = _id(grp, "gid")
        else:
            found = next((g for g in groups if g[0] == grp), None)
            if found is None:
                raise UnknownName("group", grp)
            gid = int(found[2])
    login = entry[0] if entry is not None else None
    member_of = tuple(dict.fromkeys(
        int(g[2]) for g in groups
        if login and len(g) > 3 and login in (m.strip() for m in g[3].split(","))))
    return Account(uid=uid, gid=gid, explicit_group=bool(grp), memberships=member_of,
                   name=login, home=(entry[5] if len(entry) > 5 else "") if entry else None)


def _rows(text: str | None, fields: int) -> list[list[str]]:
    out = []
    for raw in (text or "").splitlines():
        raw = raw.strip()
        if raw and not raw.startswith(("#", "+", "-")):
            row = raw.split(":")
            if len(row) >= fields:
                out.append(row)
    return out


def _numeric(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _id(text: str, kind: str) -> int:
    v = int(text)
    if v > MAX_ID:
        raise IdOutOfRange(kind, text)
    return v

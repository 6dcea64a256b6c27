"""Flower's credentials: basic auth unless explicitly turned off on loopback.

Flower's API can list and revoke tasks and shut workers down, so it is never left open on an
address another machine can reach.  Credentials reach Flower through its environment
(``FLOWER_BASIC_AUTH``), never its command line, which every local user can read in /proc.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

__all__ = ["FlowerAuthError", "environment", "read_credentials"]

DEFAULT_USER = "minibox"


class FlowerAuthError(Exception):
    pass


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def read_credentials(path: Path) -> list[str]:
    """``user:password`` lines of a credentials file (blank lines and ``#`` comments skipped)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise FlowerAuthError(f"cannot read Flower credentials from {path}: "
                              f"{e.strerror or e}") from None
    creds = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise FlowerAuthError(f"{path}:{n}: expected user:password")
        if "," in line:
            raise FlowerAuthError(f"{path}:{n}: a comma cannot be part of a Flower credential")
        creds.append(line)
    if not creds:
        raise FlowerAuthError(f"{path} holds no user:password line")
    return creds


def _default_file(data_root: Path) -> Path:
    """``run/flower-credentials`` under the data root, made (0600) on first use."""
    path = Path(data_root) / "run" / "flower-credentials"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{DEFAULT_USER}:{secrets.token_urlsafe(18)}\n")
        try:
            os.link(tmp, path)          # first writer wins; a concurrent start reads theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path


def environment(settings, address: str, auth_file: str | None,
                unauthenticated: bool) -> dict[str, str]:
    """The FLOWER_* variables for this start, or FlowerAuthError saying what is wrong."""
    if unauthenticated:
        if not _is_loopback(address):
            raise FlowerAuthError(f"--unauthenticated is only allowed on a loopback address, "
                                  f"not {address}: give Flower credentials instead")
        return {"FLOWER_UNAUTHENTICATED_API": "true"}
    inline = os.environ.get("MINIBOX_FLOWER_BASIC_AUTH", "").strip()
    if inline:
        creds = [c.strip() for c in inline.split(",") if c.strip()]
        if any(":" not in c for c in creds):
            raise FlowerAuthError("MINIBOX_FLOWER_BASIC_AUTH: expected user:password[,...]")
    else:
        auth_file = auth_file or os.environ.get("MINIBOX_FLOWER_AUTH_FILE")
        path = Path(auth_file) if auth_file else _default_file(settings.data_root)
        creds = read_credentials(path)
    env = {"FLOWER_BASIC_AUTH": ",".join(creds)}
    os.environ.pop("FLOWER_UNAUTHENTICATED_API", None)
    return env

"""The credentials file ``minibox login`` writes: ``{"auths": {HOST: {"auth": b64(user:pw)}}}``
(Docker's config.json shape), mode 0600 in a 0700 directory, replaced by rename."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from minibox import atomic
from minibox.errors import UserError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {"auths": {}}
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the credentials file {path}: {e}",
                        hint="fix or remove it, then `minibox login` again") from None
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise UserError(f"the credentials file {path} is not {{\"auths\": {{…}}}}",
                        hint="remove it, then `minibox login` again")
    data.setdefault("auths", {})
    return data


def lookup(path: Path, host: str) -> Credentials | None:
    entry = _read(path)["auths"].get(host)
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return Credentials(user, password) if sep else None


def store(path: Path, host: str, creds: Credentials) -> None:
    data = _read(path)
    raw = f"{creds.username}:{creds.password}".encode()
    data["auths"][host] = {"auth": base64.b64encode(raw).decode()}
    _write(path, data)


def remove(path: Path, host: str) -> bool:
    data = _read(path)
    if host not in data["auths"]:
        return False
    del data["auths"][host]
    _write(path, data)
    return True


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic.write_json(path, data, mode=0o600, indent=2)

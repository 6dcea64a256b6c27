"""What a request to the daemon must carry, set up at start.

* The ``minibox`` system group: who may use the local API (like Docker's ``docker`` group).
  Created if missing (``groupadd --system``; idempotent).
* The API token: MINIBOX_API_TOKEN when set, else one generated at first start and kept
  across restarts.  Either way it is written (atomically) to ``run/api-token``, mode 0640
  root:minibox, so root and the group's members find it without being told.
* The exposure rule: a listener that is not loopback only starts when every request there
  must carry a credential (the token, or a TLS client certificate); MINIBOX_API_AUTH=none
  (no token, the reference engine's default) is refused there, and on loopback it is
  allowed with a warning.
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import secrets
import socket
import stat
import subprocess
import time
from pathlib import Path

from minibox import atomic
from minibox.config import API_GROUP, Settings
from minibox.errors import MiniBoxError

log = logging.getLogger("minibox.daemon")

AUTH_MODES = ("token", "none")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=")


def api_group() -> int | None:
    """The gid of the ``minibox`` group, created (as a system group) if missing; None when
    it cannot be made (then only root can use the local API)."""
    try:
        return grp.getgrnam(API_GROUP).gr_gid
    except KeyError:
        pass
    why = ""
    for attempt in range(4):      # groupadd exits 10 while another holds /etc/group's lock
        try:
            r = subprocess.run(["groupadd", "--system", API_GROUP], capture_output=True,
                               text=True)
            why = r.stderr.strip() or f"groupadd exited {r.returncode}"
        except OSError as e:
            why = str(e)
        try:
            gid = grp.getgrnam(API_GROUP).gr_gid      # made now, or by a racing daemon
        except KeyError:
            time.sleep(0.2 * (attempt + 1))
            continue
        log.info("created the system group '%s' (gid %d): its members may use the API; "
                 "add a user with: usermod -aG %s USER", API_GROUP, gid, API_GROUP)
        return gid
    log.warning("cannot create the group '%s' (%s): only root can use the local API",
                API_GROUP, why)
    return None


def share_with_group(path: Path, gid: int | None, mode: int) -> None:
    """root:minibox and ``mode`` (group bits cleared when there is no group)."""
    if gid is None:
        mode &= 0o700
    os.chown(path, 0, gid if gid is not None else 0)
    os.chmod(path, mode)


def load_token(settings: Settings, gid: int | None) -> str:
    """The API token (MINIBOX_API_TOKEN, else the one kept in the token file, else a new
    one), written to the token file 0640 root:minibox by temp file + rename."""
    path = settings.token_file
    token = settings.api_token
    if token and not _valid(token):
        raise MiniBoxError("MINIBOX_API_TOKEN holds characters a header cannot carry",
                           hint="use letters, digits and -_.~+/= only (e.g. `openssl rand "
                                "-hex 32`)")
    kept = _read(path)
    token = token or kept or secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if token != kept:
        # 0600 until it has its group, then 0640 root:minibox: never open to more
        atomic.write_file(path, token + "\n", mode=0o600,
                          prepare=lambda tmp: share_with_group(tmp, gid, 0o640))
    else:
        share_with_group(path, gid, 0o640)      # the group may be new since the last start
    _warn_if_unreachable(path, gid)
    return token


def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text if text and _valid(text) else None


def _valid(token: str) -> bool:
    return all(c in _TOKEN_CHARS for c in token)


def _warn_if_unreachable(path: Path, gid: int | None) -> None:
    """Group members need search permission on every directory above the token file."""
    if gid is None:
        return
    for d in path.parents:
        st = d.stat()
        if not (st.st_mode & stat.S_IXOTH or (st.st_gid == gid and st.st_mode & stat.S_IXGRP)):
            log.warning("members of group '%s' cannot reach %s: %s is mode %o; "
                        "they will need MINIBOX_API_TOKEN", API_GROUP, path, d,
                        stat.S_IMODE(st.st_mode))
            return


# --- exposure --------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback
                               for i in infos)


def check_exposure(settings: Settings, host: str | None) -> None:
    """Refuse a TCP listener on a non-loopback ``host`` where a request could come without
    a credential; warn about one on loopback.  ``host`` None: a unix socket only."""
    if settings.api_auth not in AUTH_MODES:
        raise MiniBoxError(f"invalid MINIBOX_API_AUTH '{settings.api_auth}'",
                           hint="use 'token' (the default) or 'none'")
    if host is None or settings.api_auth != "none" or settings.tls_client_ca:
        return
    if is_loopback(host):
        log.warning("MINIBOX_API_AUTH=none: requests to %s need no credential; every local "
                    "process (a --network host container too) is root on this machine", host)
        return
    raise MiniBoxError(
        f"refusing to listen on {settings.http_addr}: it is not a loopback address, and with "
        "MINIBOX_API_AUTH=none a request there would need no credential",
        hint="drop MINIBOX_API_AUTH=none (requests then need the API token: MINIBOX_API_TOKEN "
             f"or the one generated in {settings.token_file}), or require TLS client "
             "certificates (--tls-cert, --tls-key and --tls-client-ca)")


def describe(settings: Settings) -> str:
    """Which credential a TCP request needs, for the start-up line."""
    if settings.tls_client_ca:
        return f"a client certificate signed by {settings.tls_client_ca}"
    if settings.api_auth == "none":
        return "no credential (MINIBOX_API_AUTH=none)"
    return f"the API token in {settings.token_file}"

"""Where the daemon is and how the CLI proves itself to it: the one place the CLI reads its
connection settings, once per process (cli/client.py asks here).

* the address: ``--host``, else MINIBOX_API, else http://127.0.0.1:8080; ``http://H:P``,
  ``https://H:P``, ``unix:///path.sock`` (a bare ``H:P`` means http, a bare path a socket);
* the token: MINIBOX_API_TOKEN, else, for a daemon on this machine (loopback), the file the
  daemon keeps it in, ``$MINIBOX_DATA_ROOT/run/api-token`` (default data root
  /var/lib/minibox; readable by root and the group ``minibox``).  Nothing is read for a
  unix socket (its file mode is the credential) nor sent to another machine unasked;
* https: MINIBOX_TLS_CA (the CA that signed the daemon's certificate, else the system's),
  MINIBOX_TLS_CLIENT_CERT and MINIBOX_TLS_CLIENT_KEY (when the daemon wants certificates).

Import-light (os only): ``minibox run`` and ``stats`` come through here on their fast path.
"""

from __future__ import annotations

import os

DEFAULT_API = "http://127.0.0.1:8080"
DEFAULT_DATA_ROOT = "/var/lib/minibox"
GROUP = "minibox"

_host: str | None = None
_current: "Endpoint | None" = None


def use_host(host: str | None) -> None:
    """``minibox --host ADDR``: overrides MINIBOX_API for this process."""
    global _host, _current
    _host, _current = host, None


class Endpoint:
    __slots__ = ("api", "token", "token_source", "token_problem", "tls_ca", "client_cert",
                 "client_key")

    def __init__(self, env) -> None:
        self.api = normalize(_host or env.get("MINIBOX_API") or DEFAULT_API)
        self.tls_ca = (env.get("MINIBOX_TLS_CA") or "").strip() or None
        self.client_cert = (env.get("MINIBOX_TLS_CLIENT_CERT") or "").strip() or None
        self.client_key = (env.get("MINIBOX_TLS_CLIENT_KEY") or "").strip() or None
        self.token = (env.get("MINIBOX_API_TOKEN") or "").strip() or None
        self.token_source = "MINIBOX_API_TOKEN" if self.token else None
        self.token_problem = None
        if self.token is None and self.is_local_tcp():
            root = (env.get("MINIBOX_DATA_ROOT") or "").strip() or DEFAULT_DATA_ROOT
            self._read_token_file(os.path.join(root, "run", "api-token"))

    def _read_token_file(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            self.token_problem = f"this user may not read {path} (permission denied)"
            return
        except OSError:
            self.token_problem = f"there is no {path} (is MINIBOX_DATA_ROOT the daemon's?)"
            return
        try:
            token = os.read(fd, 4096).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        if token:
            self.token, self.token_source = token, path
        else:
            self.token_problem = f"{path} is empty"

    @property
    def unix_path(self) -> str | None:
        return self.api[len("unix://"):] if self.api.startswith("unix://") else None

    def hostport(self) -> tuple[str, int]:
        """(host, port) of an http(s) address."""
        rest = self.api.split("://", 1)[-1].split("/", 1)[0]
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit():
            return rest.strip("[]"), 443 if self.api.startswith("https:") else 80
        return host.strip("[]"), int(port)

    def is_local_tcp(self) -> bool:
        if self.unix_path is not None:
            return False
        host = self.hostport()[0]
        return host == "localhost" or host == "::1" or host.startswith("127.")

    def ssl_context(self):
        """The client's TLS context for https (imports ssl: only https pays for it)."""
        import ssl

        from minibox.errors import UserError
        try:
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            if self.client_cert:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as e:
            raise UserError(f"cannot load the TLS files for {self.api}: {e}",
                            hint="check MINIBOX_TLS_CA, MINIBOX_TLS_CLIENT_CERT and "
                                 "MINIBOX_TLS_CLIENT_KEY") from None
        return ctx

    def unauthorized(self):
        """The daemon answered 401: say why, and how to get access."""
        from minibox.errors import Unauthorized
        if self.token is not None:
            return Unauthorized(f"miniboxd at {self.api} refused the API token from "
                                f"{self.token_source}",
                                hint="the daemon's token is in DATA_ROOT/run/api-token on its "
                                     "machine; set MINIBOX_API_TOKEN to it, or unset a stale one")
        if self.is_local_tcp() or self.unix_path is not None:
            why = f", and {self.token_problem}" if self.token_problem else ""
            return Unauthorized(
                f"miniboxd at {self.api} needs its API token{why}",
                hint=f"run as root, or join the group '{GROUP}': `sudo usermod -aG {GROUP} "
                     f"$USER`, then log in again; or set MINIBOX_API_TOKEN")
        return Unauthorized(f"miniboxd at {self.api} needs an API token",
                            hint="set MINIBOX_API_TOKEN to the daemon's token (in "
                                 "DATA_ROOT/run/api-token on its machine), or use TLS client "
                                 "certificates (MINIBOX_TLS_CLIENT_CERT, MINIBOX_TLS_CLIENT_KEY)")


def normalize(addr: str) -> str:
    addr = addr.strip().rstrip("/")
    if addr.startswith("/"):
        return "unix://" + addr
    if "://" not in addr:
        return "http://" + addr
    return addr


def current() -> Endpoint:
    global _current
    if _current is None:
        _current = Endpoint(os.environ)
    return _current

"""The CLI's HTTP client for miniboxd (httpx), with errors translated once, here.

Where the daemon is and the token it gets come from cli/endpoint.py (``--host``/MINIBOX_API,
MINIBOX_API_TOKEN or the daemon's token file, MINIBOX_TLS_CA for https).
"""

from __future__ import annotations

import sys
import types

# httpx imports its own command line (and with it rich and pygments) at import time when
# those are installed; the CLI never uses it, and skipping it saves tens of milliseconds on
# every command.  A stub module makes httpx fall back to its no-CLI stub.
sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
import httpx  # noqa: E402

from minibox.cli import endpoint
from minibox.errors import DaemonUnavailable


class Client:
    def __init__(self, timeout: float | None = 60.0):
        ep = endpoint.current()
        headers = {"Authorization": f"Bearer {ep.token}"} if ep.token else {}
        verify = False      # plain HTTP or the unix socket: no TLS context to make (loading
        if ep.unix_path is not None:            # the CA bundle costs ~0.1 s per command)
            transport, base = httpx.HTTPTransport(uds=ep.unix_path), "http://miniboxd"
        else:
            transport, base = None, ep.api
            if ep.api.startswith("https://"):
                verify = ep.ssl_context()
        self.api = ep.api
        self.http = httpx.Client(base_url=base, headers=headers, transport=transport,
                                 timeout=timeout, verify=verify)

    # --- plumbing ----------------------------------------------------------------
    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise self._unavailable(e) from None
        check(resp)
        return resp

    def stream(self, method: str, path: str, **kw):
        """Context manager over a streamed response (errors checked before yielding)."""
        return _Stream(self, method, path, kw)

    def _unavailable(self, e: Exception) -> DaemonUnavailable:
        return DaemonUnavailable(
            f"cannot reach miniboxd at {self.api}: {e}",
            hint="start it with `miniboxd` (as root), or set MINIBOX_API to where it listens")

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.request("DELETE", path, **kw)


class _Stream:
    def __init__(self, client: Client, method: str, path: str, kw: dict):
        self.client, self.method, self.path, self.kw = client, method, path, kw
        self.cm = None

    def __enter__(self) -> httpx.Response:
        try:
            self.cm = self.client.http.stream(self.method, self.path, **self.kw)
            resp = self.cm.__enter__()
        except httpx.TransportError as e:
            raise self.client._unavailable(e) from None
        if resp.status_code >= 400:
            resp.read()
            self.cm.__exit__(None, None, None)
            check(resp)
        return resp

    def __exit__(self, *exc):
        if self.cm is not None:
            return self.cm.__exit__(*exc)
        return False


def iter_raw(resp: httpx.Response):
    """A streamed body's bytes; a connection lost mid-way is a DaemonUnavailable."""
    try:
        yield from resp.iter_raw()
    except httpx.TransportError as e:
        from minibox.cli.daemon_errors import lost_connection
        raise lost_connection(e) from None


def check(resp: httpx.Response) -> None:
    """Raise the daemon's error answer as a MiniBoxError (cli/daemon_errors.py)."""
    if resp.status_code < 400:
        return
    if resp.status_code == 401:
        raise endpoint.current().unauthorized()
    from minibox.cli.daemon_errors import daemon_error
    raise daemon_error(resp.status_code, resp.content, resp.reason_phrase)

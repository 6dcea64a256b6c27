"""The CLI's HTTP client for miniboxd (httpx), with errors translated once, here.

MINIBOX_API is ``http://host:port`` (default http://127.0.0.1:8080) or ``unix:///path.sock``;
MINIBOX_API_TOKEN, when set, is sent as a bearer token on every request.
"""

from __future__ import annotations

import os
import sys
import types

# httpx imports its own command line (and with it rich and pygments) at import time when
# those are installed; the CLI never uses it, and skipping it saves tens of milliseconds on
# every command.  A stub module makes httpx fall back to its no-CLI stub.
sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
import httpx  # noqa: E402

from minibox.errors import DaemonUnavailable

DEFAULT_API = "http://127.0.0.1:8080"


class Client:
    def __init__(self, api: str | None = None, token: str | None = None,
                 timeout: float | None = 60.0):
        api = (api or os.environ.get("MINIBOX_API") or DEFAULT_API).strip().rstrip("/")
        token = token if token is not None else (os.environ.get("MINIBOX_API_TOKEN") or "")
        headers = {"Authorization": f"Bearer {token.strip()}"} if token.strip() else {}
        if api.startswith("unix://"):
            transport = httpx.HTTPTransport(uds=api[len("unix://"):])
            base = "http://miniboxd"
        else:
            transport, base = None, api
        self.api = api
        self.http = httpx.Client(base_url=base, headers=headers, transport=transport,
                                 timeout=timeout)

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


def check(resp: httpx.Response) -> None:
    """Raise the daemon's error answer as a MiniBoxError (cli/daemon_errors.py)."""
    if resp.status_code < 400:
        return
    from minibox.cli.daemon_errors import daemon_error
    raise daemon_error(resp.status_code, resp.content, resp.reason_phrase)

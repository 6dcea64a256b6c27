"""Registry authentication: the ``WWW-Authenticate`` challenge, bearer tokens, basic auth.

A request goes out with what worked last time for its scope.  A 401 carries a challenge:
``Basic`` -> send the credentials; ``Bearer realm=…,service=…,scope=…`` -> ask the realm for
a token (anonymously, or with the credentials as basic auth) and send the token.  Tokens
are cached per scope for the life of the session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minibox.errors import RegistryError
from minibox.registry.credentials import Credentials

_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # "basic" or "bearer" (lowercase)
    params: dict[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (None when there is none)."""
    text = (header or "").strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM_RE.finditer(rest)}
    return Challenge(scheme.lower(), params)


class TokenSource:
    """Fetches bearer tokens with an httpx client (the session's), caching them by scope."""

    def __init__(self, http, creds: Credentials | None, registry: str, allows_http):
        self._http = http
        self._creds = creds
        self._registry = registry
        self._allows_http = allows_http
        self._tokens: dict[str, str] = {}

    def cached(self, scope: str) -> str | None:
        return self._tokens.get(scope)

    def authorization(self, challenge: Challenge, scope: str) -> str:
        """The Authorization header value that answers ``challenge`` for ``scope``."""
        if challenge.scheme == "basic":
            if self._creds is None:
                raise self.login_needed()
            value = self._creds.basic()
        elif challenge.scheme == "bearer":
            value = "Bearer " + self._fetch_token(challenge, scope)
        else:
            raise RegistryError(f"registry {self._registry} asks for unsupported "
                                f"authentication '{challenge.scheme[:40]}'")
        self._tokens[scope] = value
        return value

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        import httpx

        realm = challenge.params.get("realm") or ""
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry {self._registry} sent a token challenge without a "
                                f"usable realm")
        host = realm.split("://", 1)[1].split("/", 1)[0]
        if realm.startswith("http://") and not self._allows_http(host):
            raise RegistryError(f"registry {self._registry} wants tokens from plain-HTTP "
                                f"{host}, which is neither loopback nor an insecure registry",
                                hint="add it to MINIBOX_INSECURE_REGISTRIES if you trust it")
        params = [("service", challenge.params["service"])] \
            if challenge.params.get("service") else []
        params += [("scope", s) for s in scope.split(" ") if s]
        headers = {"Authorization": self._creds.basic()} if self._creds else {}
        try:
            resp = self._http.get(realm, params=params, headers=headers)
        except httpx.TransportError as e:
            raise RegistryError(f"cannot reach the token server {host} of registry "
                                f"{self._registry}: {e}") from None
        if resp.status_code in (401, 403):
            raise self.refused()
        if resp.status_code >= 400:
            raise RegistryError(f"token server {host} answered {resp.status_code} for "
                                f"{self._registry}")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {host} of registry {self._registry} sent no "
                                f"token")
        return token

    def refused(self) -> RegistryError:
        if self._creds is None:
            return self.login_needed()
        return RegistryError(f"registry {self._registry} refused the credentials of user "
                             f"'{self._creds.username}'",
                             hint=f"check them with `minibox login {self._registry}`")

    def login_needed(self) -> RegistryError:
        return RegistryError(f"registry {self._registry} requires authentication",
                             hint=f"run `minibox login {self._registry}` first")

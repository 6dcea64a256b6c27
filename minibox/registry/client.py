"""A distribution-spec client for one repository on one endpoint (httpx).

Every HTTP and transport error is translated here, once, into RegistryError / NotFound.
Nothing a registry sends is echoed back except its short error codes.
"""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from typing import Iterator

sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
import httpcore  # noqa: E402
import httpx  # noqa: E402

# httpcore reads HTTP/1.1 bodies 64 KiB at a time; blobs are tens of MB, and on this 2-core
# class of machine 1 MiB reads download a blob up to twice as fast (measured with
# bench/bench_registry.py).  A class attribute, read per read call.
httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES = 1 << 20

from minibox.errors import NotFound, RegistryError  # noqa: E402
from minibox.registry.auth import TokenSource, parse_challenge  # noqa: E402
from minibox.registry.config import Endpoint, RegistryConfig  # noqa: E402
from minibox.registry.credentials import Credentials  # noqa: E402
from minibox.store.oci import (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MEDIA_INDEX,  # noqa: E402
                               MEDIA_MANIFEST)

ACCEPT_MANIFESTS = ", ".join([MEDIA_MANIFEST, MEDIA_INDEX, DOCKER_MANIFEST,
                              DOCKER_MANIFEST_LIST])
MAX_MANIFEST_BYTES = 4 << 20
USER_AGENT = "minibox"


class Session:
    """Requests about ``repository`` at ``endpoint``, authenticated as challenges ask."""

    def __init__(self, endpoint: Endpoint, repository: str, creds: Credentials | None,
                 config: RegistryConfig, *, timeout: float = 60.0):
        self.endpoint = endpoint
        self.repository = repository
        config.check_allowed(endpoint.netloc, f"cannot contact {endpoint.url}")

        def allowed(request: httpx.Request) -> None:   # every request: redirects, tokens too
            host = request.url.netloc.decode()
            config.check_allowed(host, f"refusing to contact {request.url.scheme}://{host}")

        self.http = httpx.Client(base_url=endpoint.url, follow_redirects=True,
                                 verify=_ssl_context(),
                                 timeout=httpx.Timeout(timeout, connect=10.0),
                                 headers={"User-Agent": USER_AGENT},
                                 limits=httpx.Limits(max_connections=16),
                                 event_hooks={"request": [allowed]})
        self.tokens = TokenSource(self.http, creds, endpoint.host, config.allows_http)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def scope(self, actions: str = "pull", repository: str | None = None) -> str:
        return f"repository:{repository or self.repository}:{actions}"

    def send(self, method: str, path: str, *, scope: str | None = None, stream: bool = False,
             **kw) -> httpx.Response:
        """One request, answering an auth challenge once.  The caller closes a streamed
        response.  Transport errors become RegistryError."""
        scope = (scope or self.scope()).strip()
        headers = dict(kw.pop("headers", None) or {})
        auth = self.tokens.cached(scope)
        for attempt in (0, 1):
            if auth:
                headers["Authorization"] = auth
            req = self.http.build_request(method, path, headers=headers, **kw)
            try:
                resp = self.http.send(req, stream=stream)
            except httpx.TransportError as e:
                raise self.unreachable(e) from None
            if resp.status_code != 401:
                return resp
            resp.close()
            challenge = parse_challenge(resp.headers.get("www-authenticate"))
            if attempt == 1 or challenge is None:
                raise self.tokens.refused()
            auth = self.tokens.authorization(challenge, scope)
        raise AssertionError("unreachable")

    def unreachable(self, e: Exception) -> RegistryError:
        hint = "check that the registry is running and the name is right"
        if self.endpoint.url.startswith("https://") and isinstance(e, httpx.ConnectError):
            hint += "; a plain-HTTP registry must be loopback or in MINIBOX_INSECURE_REGISTRIES"
        return RegistryError(f"cannot reach registry {self.endpoint.host} "
                             f"({self.endpoint.url}): {type(e).__name__}: {e}", hint=hint)

    def fail(self, resp: httpx.Response, what: str) -> RegistryError:
        """The error for an unexpected answer about ``what``."""
        code = _error_code(resp)
        where = f"registry {self.endpoint.host}"
        if resp.status_code == 404:
            return NotFound(f"{what} not found in {where}" + (f" ({code})" if code else ""),
                            hint="check the name, tag or digest")
        if resp.status_code == 403:
            return RegistryError(f"{where} denied access to {what}" +
                                 (f" ({code})" if code else ""),
                                 hint=f"check your access; `minibox login {self.endpoint.host}`")
        return RegistryError(f"{where} answered {resp.status_code} for {what}" +
                             (f" ({code})" if code else ""))

    # -- the API --------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ (authenticating if asked): does this endpoint speak the API and accept us?"""
        resp = self.send("GET", "/v2/", scope=" ")
        resp.close()
        if resp.status_code >= 400:
            raise self.fail(resp, "the API root /v2/")

    def get_manifest(self, reference: str) -> tuple[bytes, str, str | None]:
        """(body, media type, Docker-Content-Digest) of a manifest or index."""
        resp = self.send("GET", f"/v2/{self.repository}/manifests/{reference}",
                         headers={"Accept": ACCEPT_MANIFESTS}, stream=True)
        try:
            if resp.status_code != 200:
                raise self.fail(resp, f"manifest {self.repository}:{reference}"
                                if ":" not in reference else
                                f"manifest {self.repository}@{reference}")
            body = _read_limited(resp, MAX_MANIFEST_BYTES, self.endpoint.host)
        except httpx.TransportError as e:
            raise self.unreachable(e) from None
        finally:
            resp.close()
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        return body, media, resp.headers.get("docker-content-digest")

    @contextmanager
    def blob(self, digest: str, offset: int = 0) -> Iterator[httpx.Response]:
        """A streamed GET of a blob from ``offset`` (a Range request past 0)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.send("GET", f"/v2/{self.repository}/blobs/{digest}", headers=headers,
                         stream=True)
        try:
            if resp.status_code not in (200, 206):
                raise self.fail(resp, f"blob {digest}")
            yield resp
        finally:
            resp.close()

    def has_blob(self, digest: str, actions: str = "pull") -> bool:
        resp = self.send("HEAD", f"/v2/{self.repository}/blobs/{digest}",
                         scope=self.scope(actions))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self.fail(resp, f"blob {digest}")

    def mount_blob(self, digest: str, source_repository: str) -> bool:
        """Ask the registry to link a blob from another repository; False if it would not."""
        scope = f"{self.scope('pull,push')} {self.scope('pull', source_repository)}"
        resp = self.send("POST", f"/v2/{self.repository}/blobs/uploads/",
                         params={"mount": digest, "from": source_repository}, scope=scope)
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:                    # refused: cancel the upload it opened
            self._cancel_upload(resp.headers.get("location"))
            return False
        raise self.fail(resp, f"mount of blob {digest}")

    def upload_blob(self, digest: str, size: int, chunks) -> None:
        """Upload a blob monolithically: POST an upload, then PUT the bytes with ?digest=."""
        scope = self.scope("pull,push")
        resp = self.send("POST", f"/v2/{self.repository}/blobs/uploads/", scope=scope)
        if resp.status_code != 202 or not resp.headers.get("location"):
            raise self.fail(resp, f"upload of blob {digest}")
        location = resp.headers["location"]
        sep = "&" if "?" in location else "?"
        resp = self.send("PUT", f"{location}{sep}digest={digest}", scope=scope, content=chunks,
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Length": str(size)})
        if resp.status_code not in (201, 204):
            raise self.fail(resp, f"upload of blob {digest}")

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str | None:
        resp = self.send("PUT", f"/v2/{self.repository}/manifests/{reference}",
                         scope=self.scope("pull,push"), content=body,
                         headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201, 202):
            raise self.fail(resp, f"manifest {self.repository}:{reference}")
        return resp.headers.get("docker-content-digest")

    def _cancel_upload(self, location: str | None) -> None:
        if location:
            try:
                self.send("DELETE", location, scope=self.scope("pull,push")).close()
            except RegistryError:
                pass


_SSL: list = []


def _ssl_context():
    """One TLS context for every session (loading the CA bundle costs ~0.2 s)."""
    if not _SSL:
        import ssl
        _SSL.append(ssl.create_default_context())
    return _SSL[0]


def _read_limited(resp: httpx.Response, limit: int, host: str) -> bytes:
    out = bytearray()
    for chunk in resp.iter_bytes():
        out += chunk
        if len(out) > limit:
            raise RegistryError(f"registry {host} sent a manifest over {limit >> 20} MiB; "
                                f"refusing it")
    return bytes(out)


def _error_code(resp: httpx.Response) -> str:
    """The registry's first error code (MANIFEST_UNKNOWN …), never its free text."""
    try:
        if not resp.is_stream_consumed:
            resp.read()
        errors = resp.json().get("errors") or []
        code = str(errors[0].get("code", ""))
    except (ValueError, AttributeError, IndexError, TypeError, httpx.HTTPError):
        return ""
    return code[:40] if code.replace("_", "").isalnum() else ""

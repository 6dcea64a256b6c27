"""The CLI's one HTTP client for miniboxd: every command talks to the daemon through
``Client`` here, and every failure becomes a MiniBoxError here, once.

Where the daemon is, the token it gets and the TLS files come from cli/endpoint.py (read
from the environment once per process); the bytes go over cli/transport.py, a small
HTTP/1.1 client on a raw socket (http, https with client certificates, a unix socket), so a
foreground ``run``, ``stats`` or ``build`` imports no HTTP library at all.  What fails:

* connecting, sending, or the answer's head: ``DaemonUnavailable`` "cannot reach miniboxd
  at X" (a TLS failure says which files to check);
* the body, mid-way (reset, timed out): ``DaemonUnavailable`` "lost the connection";
* an answer >= 400: 401 as endpoint.py explains it (which token, how to get one), any other
  as cli/daemon_errors.py reads the daemon's error body (kind, message, hint, exit code).

Import-light (no click, json, re or socket.py): the fast paths come through here.
"""

from __future__ import annotations

from minibox.cli import endpoint, transport
from minibox.cli import fastjson as json
from minibox.errors import DaemonUnavailable

__all__ = ["Client", "Response", "quote"]

quote = transport.quote
_DEFAULT = object()


class Client:
    """get/post/delete (the whole answer) and stream (an open one, a context manager).

    Each request is a new connection, so threads may share a client.  Keywords: ``params``
    (dict or pairs), one body of ``json`` (an object), ``content`` (bytes; a seekable binary
    file, sent from where it stands; or an iterable of bytes, sent chunked), or ``data`` and
    ``files`` (multipart: name -> (filename, seekable file, content type)); ``headers``
    (e.g. the body's Content-Type); ``timeout`` (s, per socket operation; None waits for
    ever) overrides the client's."""

    def __init__(self, timeout: float | None = 60.0):
        self.timeout = timeout

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw) -> Response:
        return self.request("DELETE", path, **kw)

    def request(self, method: str, path: str, **kw) -> Response:
        """Send; the answer, read to its end (MiniBoxError on >= 400)."""
        resp = self.stream(method, path, **kw)
        try:
            resp.read()
        finally:
            resp.close()
        return resp

    def stream(self, method: str, path: str, *, params=None, json=None, content=None,
               data=None, files=None, headers=None, timeout=_DEFAULT) -> Response:
        """Send; the open answer, its body still to read (``with`` closes it)."""
        body_headers, parts, length = _body(json, content, data, files)
        headers = {**body_headers, **(headers or {})}
        ep = endpoint.current()
        if ep.token:
            headers["Authorization"] = f"Bearer {ep.token}"
        sock = None
        try:
            sock, host = transport.connect(ep, self.timeout if timeout is _DEFAULT else timeout)
            transport.send(sock, host, method, path + transport.query(params), headers, parts,
                           length)
            status, head, rest = transport.read_head(sock)
        except OSError as e:
            if sock is not None:
                sock.close()
            raise unreachable(ep, e) from None
        except transport.BadAnswer as e:
            sock.close()
            raise DaemonUnavailable(f"{ep.api} does not answer as miniboxd does (it said "
                                    f"{e.line!r})", hint="set --host or MINIBOX_API to where "
                                    "miniboxd listens") from None
        resp = Response(sock, status, head, rest)
        if status >= 400:
            raise resp.error()
        return resp


def _body(obj, content, data, files) -> tuple[dict, list | tuple, int | None]:
    """(headers, parts, length: None for chunked) of a request's body."""
    if obj is not None:
        raw = json.dumps(obj).encode()
        return {"Content-Type": "application/json"}, [raw], len(raw)
    if files is not None:
        parts, length, ctype = transport.multipart(data or {}, files)
        return {"Content-Type": ctype}, parts, length
    if content is None:
        return {}, (), 0
    octets = {"Content-Type": "application/octet-stream"}
    if isinstance(content, (bytes, bytearray)):
        return octets, [content], len(content)
    if hasattr(content, "read"):
        try:
            return octets, [content], transport.remaining(content)
        except (OSError, ValueError):       # a pipe: as it comes
            return octets, _chunks(content), None
    return octets, content, None


def _chunks(fileobj):
    while chunk := fileobj.read(1 << 20):
        yield chunk


class Response:
    """An answer of miniboxd: ``status_code``, ``headers`` (lower-case names), the body by
    ``read``/``json``/``text`` or as it comes (``read1``, ``iter_bytes``, ``iter_lines``); ``complete``
    says whether all of it arrived."""

    def __init__(self, sock, status: int, headers: dict, rest: bytes):
        self.sock, self.status_code, self.headers = sock, status, headers
        self.body = transport.Body(sock, status, headers, rest)
        self.content: bytes | None = None

    @property
    def complete(self) -> bool:
        return self.body.complete

    def read1(self, _n: int = 65536) -> bytes:
        """The next bytes of the body as they arrive; b"" at its end."""
        try:
            return self.body.read1()
        except OSError as e:      # reset, timed out: the daemon went away mid-answer
            from minibox.cli.daemon_errors import lost_connection
            raise lost_connection(e) from None

    def read(self) -> bytes:
        """The rest of the body (kept: ``content``)."""
        if self.content is None:
            out = b""
            while chunk := self.read1():
                out += chunk
            self.content = out
        return self.content

    def json(self):
        return json.loads(self.read())

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def iter_bytes(self):
        """The body's bytes as they arrive."""
        while chunk := self.read1():
            yield chunk

    def iter_lines(self):
        """The body's lines (without the newline) as they arrive."""
        pending = b""
        while chunk := self.read1():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")

    def error(self):
        """This answer (>= 400) as the MiniBoxError to raise; the connection closed."""
        try:
            raw = self.read()
        finally:
            self.close()
        if self.status_code == 401:
            return endpoint.current().unauthorized()
        from minibox.cli.daemon_errors import daemon_error
        return daemon_error(self.status_code, raw)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def unreachable(ep, e: OSError) -> DaemonUnavailable:
    """No answer from the endpoint: refused, no such socket, timed out, or TLS failed."""
    import sys
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(e, ssl.SSLError):
        hint = ("MINIBOX_TLS_CA must name the CA that signed the daemon's certificate; a "
                "daemon that wants client certificates takes MINIBOX_TLS_CLIENT_CERT and "
                "MINIBOX_TLS_CLIENT_KEY")
    else:
        hint = ("is it running? start it with `miniboxd` (as root), or point --host or "
                "MINIBOX_API at where it listens")
    return DaemonUnavailable(f"cannot reach miniboxd at {ep.api}: {e}", hint=hint)

"""A tiny HTTP/1.1 client on a raw socket, for the hot path of ``minibox run`` (foreground).

httpx (and even http.client, which pulls in the email package) costs more to import than
the whole container run takes.  Even socket.py, urllib.parse and the idna codec (which
getaddrinfo of a str host loads) show: this uses the _socket C module and connects to an
IP-literal address directly (https, rarer, pays for socket.py and ssl).  Where to connect
and which token to send come from cli/endpoint.py, as for cli/client.py.  Handles what
miniboxd sends: a status line, headers, then a chunked or Content-Length body.
"""

from __future__ import annotations

import _socket  # the C module: socket.py (selectors, enum wrappers) costs ~5 ms to import
from minibox.cli import fastjson as json
import os

from minibox.cli import endpoint
from minibox.errors import DaemonUnavailable, MiniBoxError


class Response:
    def __init__(self, sock, status: int, headers: dict, rest: bytes):
        self.sock, self.status, self.headers, self.buf = sock, status, headers, rest
        self.chunked = "chunked" in headers.get("transfer-encoding", "")
        self.left = int(headers.get("content-length", "-1"))

    def getheader(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def complete(self) -> bool:
        """The whole body arrived (the last chunk, or Content-Length bytes)."""
        return not self.chunked and self.left <= 0

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(1 << 18)
        except OSError as e:      # reset, timed out: the daemon went away mid-answer
            from minibox.cli.daemon_errors import lost_connection
            raise lost_connection(e) from None
        self.buf += data
        return bool(data)

    def read1(self, _n: int = 65536) -> bytes:
        if not self.chunked:
            if self.left == 0:
                return b""
            if not self.buf and not self._fill():
                return b""
            out, self.buf = self.buf, b""
            if self.left > 0:
                out, self.left = out[:self.left], self.left - len(out[:self.left])
            return out
        while b"\r\n" not in self.buf:
            if not self._fill():
                return b""
        size_line, _, self.buf = self.buf.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size > len(self.buf) + (1 << 16):          # a large chunk (a MiB of an archive)
            out = self._take(size)
            if len(out) < size:
                return out                          # cut off: never complete
            while len(self.buf) < 2 and self._fill():
                pass
            self.buf = self.buf[2:]
            return out
        while len(self.buf) < size + 2:
            if not self._fill():
                break
        out, self.buf = self.buf[:size], self.buf[size + 2:]
        if size == 0:
            self.chunked, self.left = False, 0
        return out

    def _take(self, size: int) -> bytearray:
        """The next ``size`` bytes of the body (fewer if the connection ends): what is
        buffered, then received straight into one buffer instead of being rebuilt from
        256 KiB pieces (that cost a 50 MB ``save`` ~0.15 s of CPU)."""
        out = bytearray(size)
        have = len(self.buf)
        out[:have] = self.buf
        self.buf = b""
        view = memoryview(out)
        while have < size:
            try:
                n = self.sock.recv_into(view[have:])
            except OSError as e:
                from minibox.cli.daemon_errors import lost_connection
                raise lost_connection(e) from None
            if not n:
                del out[have:]
                break
            have += n
        return out

    def read(self) -> bytes:
        out = b""
        while True:
            chunk = self.read1()
            if not chunk:
                return out
            out += chunk

    def json(self):
        return json.loads(self.read())

    def iter_lines(self):
        """The body's lines (without the newline) as they arrive."""
        pending = b""
        while True:
            chunk = self.read1()
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()


def _connect(ep: endpoint.Endpoint):
    if ep.unix_path is not None:
        return _open(_socket.AF_UNIX, ep.unix_path), "miniboxd"
    host, port = ep.hostport()
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if ep.api.startswith("https://"):
        import socket
        ctx = ep.ssl_context()
        raw = socket.create_connection((host, port))
        try:
            return ctx.wrap_socket(raw, server_hostname=host), hostport
        except BaseException:
            raw.close()
            raise
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        return _open(family, (host, port)), hostport
    import socket   # a host name: resolve it (getaddrinfo) the usual way
    return socket.create_connection((host, port)), hostport


def _open(family: int, address):
    s = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(address)
    except BaseException:
        s.close()
        raise
    return s


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def quote(text: str) -> str:
    """urllib.parse.quote(text) (safe='/'), without importing urllib."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode("utf-8"))


def stream_post(path: str, params: dict, body: dict, timeout=None) -> Response:
    """POST JSON; the open response (MiniBoxError on >= 400, keeping the daemon's exit_code)."""
    data = json.dumps(body).encode()
    return request("POST", path, params, [data], len(data), "application/json", timeout)


def get_json(path: str, params: dict | None = None, timeout=30):
    """GET a JSON answer (MiniBoxError on >= 400)."""
    return request("GET", path, params, timeout=timeout).json()


def request(method: str, path: str, params: dict | None = None, parts=(), length: int | None = 0,
            content_type: str | None = None, timeout=None) -> Response:
    """Send a request whose body is ``parts`` (bytes, or binary files read to their end),
    ``length`` bytes in all, or with ``length=None`` chunked (``parts``: bytes as they come,
    e.g. from a generator reading a pipe); the open response (MiniBoxError on >= 400)."""
    ep = endpoint.current()
    try:
        sock, host = _connect(ep)
        sock.settimeout(timeout)
        query = "&".join(f"{k}={quote(str(v))}" for k, v in (params or {}).items())
        head = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1", f"Host: {host}",
                "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"]
        if content_type:
            head.append(f"Content-Type: {content_type}")
        if ep.token:
            head.append(f"Authorization: Bearer {ep.token}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for part in parts:
            if length is None:
                if part:
                    sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                continue
            _send_part(sock, part)
        if length is None:
            sock.sendall(b"0\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            buf += chunk
    except OSError as e:
        raise DaemonUnavailable(f"cannot reach miniboxd at {ep.api}: {e}",
                                hint="start it with `miniboxd` (as root), or set MINIBOX_API") from None
    head_raw, _, rest = buf.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise DaemonUnavailable(f"{ep.api} does not answer as miniboxd does (it said "
                                f"{lines[0][:60]!r})", hint="set MINIBOX_API to where miniboxd "
                                "listens") from None
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    resp = Response(sock, status, headers, rest)
    if status >= 400:
        raise _error(resp)
    return resp


def _send_part(sock, part) -> None:
    if isinstance(part, (bytes, bytearray)):
        sock.sendall(part)
        return
    while chunk := part.read(1 << 20):
        sock.sendall(chunk)


def multipart(fields: dict[str, str], file_field: str, fileobj, size: int,
              filename: str = "context.tar") -> tuple[list, int, str]:
    """A multipart/form-data body: (parts, total length, content type)."""
    boundary = "minibox-" + os.urandom(12).hex()
    head = b""
    for name, value in fields.items():
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 .encode() + value.encode() + b"\r\n")
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; "
             f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
             ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return [head, fileobj, tail], len(head) + size + len(tail), \
        f"multipart/form-data; boundary={boundary}"


def _error(resp: Response) -> MiniBoxError:
    raw = resp.read()
    if resp.status == 401:
        return endpoint.current().unauthorized()
    from minibox.cli.daemon_errors import daemon_error
    return daemon_error(resp.status, raw)

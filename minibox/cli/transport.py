"""HTTP/1.1 on a raw socket: the one transport under the CLI's client (cli/client.py).

httpx (and even http.client, which pulls in the email package) costs more to import than
a whole container run takes.  Even socket.py, urllib.parse and the idna codec (which
getaddrinfo of a str host loads) show: this uses the _socket C module and connects to an
IP-literal address directly (https, rarer, pays for socket.py and ssl; a host name pays for
socket.py).  It speaks what miniboxd needs: http, https with the endpoint's TLS context
(CA, client certificate), a unix socket; a Content-Length or chunked request body; a status
line, headers, then a chunked or Content-Length answer.

Nothing here knows MiniBox's errors: it raises OSError (ssl.SSLError included) and
``BadAnswer``, and cli/client.py translates them, once.
"""

from __future__ import annotations

import _socket  # the C module: socket.py (selectors, enum wrappers) costs ~5 ms to import
import os


class BadAnswer(ValueError):
    """What came back is not an HTTP answer (``line``: its first line)."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def connect(ep, timeout: float | None):
    """A connected socket to the endpoint (``cli/endpoint.Endpoint``) and the Host header."""
    if ep.unix_path is not None:
        return _open(_socket.AF_UNIX, ep.unix_path, timeout), "miniboxd"
    host, port = ep.hostport()
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if ep.api.startswith("https://"):
        import socket
        ctx = ep.ssl_context()
        raw = socket.create_connection((host, port), timeout)
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
        return _open(family, (host, port), timeout), hostport
    import socket   # a host name: resolve it (getaddrinfo) the usual way
    return socket.create_connection((host, port), timeout), hostport


def _open(family: int, address, timeout: float | None):
    s = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.settimeout(timeout)
        s.connect(address)
    except BaseException:
        s.close()
        raise
    return s


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def quote(text: str) -> str:
    """urllib.parse.quote(text) (safe='/'), without importing urllib."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in text.encode("utf-8"))


def query(params) -> str:
    """``?a=1&b=x`` from a dict or (name, value) pairs (names may repeat); booleans as
    true/false (as httpx sends them), None left out."""
    items = params.items() if hasattr(params, "items") else params or ()
    out = "&".join(f"{quote(str(k))}={quote(_text(v))}" for k, v in items if v is not None)
    return "?" + out if out else ""


def _text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def send(sock, host: str, method: str, target: str, headers: dict, parts=(),
         length: int | None = 0) -> None:
    """Send a request whose body is ``parts`` (bytes, or binary files read to their end),
    ``length`` bytes in all, or with ``length=None`` chunked (``parts``: bytes as they come,
    e.g. from a generator reading a pipe)."""
    head = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close",
            "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    for part in parts:
        if length is None:
            if part:
                sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            continue
        _send_part(sock, part)
    if length is None:
        sock.sendall(b"0\r\n\r\n")


def _send_part(sock, part) -> None:
    if isinstance(part, (bytes, bytearray)):
        sock.sendall(part)
        return
    while chunk := part.read(1 << 20):
        sock.sendall(chunk)


def read_head(sock) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, the body's first bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        buf += chunk
    head_raw, _, rest = buf.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise BadAnswer(lines[0][:60]) from None
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, rest


class Body:
    """An answer's body as it arrives: chunked or Content-Length, else to the connection's
    end (each request asks the daemon to close it); none after 1xx, 204 and 304.  A
    receive's OSError goes to the caller."""

    def __init__(self, sock, status: int, headers: dict, rest: bytes):
        self.sock, self.buf = sock, rest
        bodiless = status < 200 or status in (204, 304)
        self.chunked = not bodiless and "chunked" in headers.get("transfer-encoding", "")
        self.left = 0 if bodiless else int(headers.get("content-length", "-1"))

    @property
    def complete(self) -> bool:
        """The whole body arrived (the last chunk, or Content-Length bytes)."""
        return not self.chunked and self.left <= 0

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 18)
        self.buf += data
        return bool(data)

    def read1(self) -> bytes:
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
            n = self.sock.recv_into(view[have:])
            if not n:
                del out[have:]
                break
            have += n
        return out


def multipart(fields: dict, files: dict) -> tuple[list, int, str]:
    """A multipart/form-data body: (parts, total length, content type).  ``files``: name ->
    (filename, binary file, content type); each file is sent from where it stands to its
    end (it must be seekable: its length goes in the request's head)."""
    boundary = "minibox-" + os.urandom(12).hex()
    parts: list = []
    length = 0
    head = b""
    for name, value in fields.items():
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 .encode() + str(value).encode() + b"\r\n")
    for name, (filename, fileobj, ctype) in files.items():
        head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
        parts += [head, fileobj]
        length += len(head) + remaining(fileobj)
        head = b"\r\n"
    tail = head + f"--{boundary}--\r\n".encode()
    parts.append(tail)
    return parts, length + len(tail), f"multipart/form-data; boundary={boundary}"


def remaining(fileobj) -> int:
    """Bytes from a seekable file's position to its end."""
    pos = fileobj.tell()
    end = fileobj.seek(0, 2)
    fileobj.seek(pos)
    return end - pos

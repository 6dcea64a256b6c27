"""Where the daemon listens, and how: MINIBOX_HTTP_ADDR (TCP, with TLS when configured, or a
unix socket) and, beside it, the local unix socket ``run/miniboxd.sock`` (0660 root:minibox).

Every socket is bound before the farm starts (a busy port is a clear start-up error, not
a half-started farm), then served by one uvicorn server: TLS on TCP only.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from minibox.config import Settings
from minibox.daemon import credentials
from minibox.errors import MiniBoxError


def parse_addr(addr: str) -> tuple[str, int] | str:
    """MINIBOX_HTTP_ADDR: (host, port) for HOST:PORT, or the path of unix:///path.sock."""
    if addr.startswith("unix://"):
        return addr[len("unix://"):]
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MiniBoxError(f"invalid MINIBOX_HTTP_ADDR '{addr}'",
                           hint="use HOST:PORT (127.0.0.1:8080) or unix:///run/minibox.sock")
    return host.strip("[]"), int(port)


@dataclass
class Listeners:
    tcp: list[socket.socket] = field(default_factory=list)
    unix: list[tuple[socket.socket, Path, int]] = field(default_factory=list)  # sock, path, ino
    ssl: ssl.SSLContext | None = None
    where: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Close every socket and remove the socket files that are still ours."""
        for s in self.tcp:
            s.close()
        for s, path, ino in self.unix:
            s.close()
            try:
                if path.lstat().st_ino == ino:
                    path.unlink()
            except FileNotFoundError:
                pass
        self.tcp, self.unix = [], []


def open_listeners(settings: Settings, gid: int | None) -> Listeners:
    """Check the exposure rule, load TLS, bind every socket; all or nothing."""
    where = parse_addr(settings.http_addr)
    credentials.check_exposure(settings, None if isinstance(where, str) else where[0])
    out = Listeners(ssl=tls_context(settings))
    try:
        if isinstance(where, str):
            if out.ssl is not None:
                raise MiniBoxError("TLS (--tls-cert) is for a TCP listener, and "
                                   f"MINIBOX_HTTP_ADDR is the unix socket {where}",
                                   hint="listen on HOST:PORT for TLS")
        else:
            out.tcp.append(_tcp(*where))
            scheme = "https" if out.ssl else "http"
            out.where.append(f"{scheme}://{settings.http_addr} "
                             f"(needs {credentials.describe(settings)})")
        paths = [Path(where)] if isinstance(where, str) else []
        if settings.api_socket not in paths:
            paths.append(settings.api_socket)
        for path in paths:
            out.unix.append(_unix(path, gid))
            out.where.append(f"unix://{path} (mode 0660, group {credentials.API_GROUP})"
                             if gid is not None else f"unix://{path} (root only)")
    except BaseException:
        out.close()
        raise
    return out


def _tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(2048)
        s.setblocking(False)
    except OSError as e:
        s.close()
        what = "the address is in use (another miniboxd?)" if e.errno == errno.EADDRINUSE \
            else e.strerror or str(e)
        raise MiniBoxError(f"cannot listen on {host}:{port}: {what}",
                           hint="set MINIBOX_HTTP_ADDR (or --addr) to a free HOST:PORT") from None
    return s


def _unix(path: Path, gid: int | None) -> tuple[socket.socket, Path, int]:
    """Bound at a temporary name (only root can connect: no write bit for others), given
    its mode and group, then renamed over ``path``: never open to more than it should be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if _answers(path):
        raise MiniBoxError(f"another miniboxd is listening on {path}",
                           hint="stop it first, or give this one another MINIBOX_DATA_ROOT")
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(tmp))
        credentials.share_with_group(tmp, gid, 0o660)
        s.listen(2048)
        s.setblocking(False)
        os.rename(tmp, path)
    except OSError as e:
        s.close()
        tmp.unlink(missing_ok=True)
        raise MiniBoxError(f"cannot listen on unix://{path}: {e.strerror or e}") from None
    return s, path, path.lstat().st_ino


def _answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        try:
            c.connect(str(path))
            return True
        except OSError:
            return False


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context (--tls-cert/--tls-key), verifying client certificates
    against --tls-client-ca when given; None without a certificate."""
    cert, key, ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
    if not cert:
        if key or ca:
            raise MiniBoxError("--tls-key and --tls-client-ca need --tls-cert",
                               hint="give the daemon's certificate with --tls-cert "
                                    "(MINIBOX_TLS_CERT)")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise MiniBoxError(f"cannot load the TLS certificate {cert}"
                           + (f" and key {key}" if key else "") + f": {e}",
                           hint="give a PEM certificate (--tls-cert) and its private key "
                                "(--tls-key)") from None
    if ca:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as e:
            raise MiniBoxError(f"cannot load the client CA {ca}: {e}",
                               hint="give a PEM CA certificate (--tls-client-ca)") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def serve(app, listeners: Listeners) -> None:
    """Serve ``app`` on every listener until SIGTERM/SIGINT."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=listeners.tcp)     # TLS (config.ssl) when set
            loop = asyncio.get_running_loop()
            config = self.config

            def protocol():
                return config.http_protocol_class(config=config,
                                                  server_state=self.server_state,
                                                  app_state=self.lifespan.state, _loop=loop)
            for sock, _, _ in listeners.unix:
                self.servers.append(await loop.create_unix_server(protocol, sock=sock,
                                                                  backlog=config.backlog))

    tls = listeners.ssl
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                            proxy_headers=False,     # no client may claim to be https
                            http="httptools",   # C parsing: h11 held an upload to ~70 MB/s
                            ssl_context_factory=(lambda *_: tls) if tls else None)
    Server(config).run()

"""Build workers on another machine: what they fetch from the daemon and send back.

A worker whose data root is not the daemon's (the BlockJob says which root the daemon uses)
cannot read the uploaded context or the layers on the daemon's disk.  It fetches the
context as a tar (``GET /builds/{job}/context``) and every layer blob it lacks by digest
(``GET /blobs/{digest}``, verified while it is written), and after committing its block it
sends the new layer's blob back (``PUT /blobs/{digest}``, verified by the daemon), so the
daemon can stack it into the image and later blocks anywhere can fetch it.

The worker authenticates as any client does: MINIBOX_API_TOKEN (the daemon's token), and
for an https daemon MINIBOX_TLS_CA (and MINIBOX_TLS_CLIENT_CERT/KEY when it wants client
certificates).  At its start a build worker checks both against the daemon the farm's
broker names (``check_daemon``), so a wrong token or an unreachable daemon is a start-up
error, not a failed block later.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from minibox.errors import DaemonUnavailable, MiniBoxError, StoreError, Unauthorized
from minibox.rmtree import remove_tree
from minibox.wire.build import BlockJob
from minibox.wire.keys import DAEMON_RECORD

CHUNK = 1 << 20


class Daemon:
    """The daemon's blob and context endpoints, seen from a build worker."""

    def __init__(self, url: str, settings):
        import httpx

        token = settings.api_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.settings, self.auth = settings, headers
        if url.startswith("unix://"):
            self.http = httpx.Client(base_url="http://miniboxd", headers=headers,
                                     transport=httpx.HTTPTransport(uds=url[7:]), timeout=600)
        else:
            self.http = httpx.Client(base_url=url, headers=headers, timeout=600,
                                     verify=_tls(settings) if url.startswith("https:") else True)
        self.url = url

    def _fail(self, what: str, e: Exception) -> MiniBoxError:
        return DaemonUnavailable(f"{what} from miniboxd at {self.url}: {e}",
                                 hint="check MINIBOX_PUBLIC_URL on the daemon, the network "
                                      "between this worker and it, and for https "
                                      "MINIBOX_TLS_CA (and MINIBOX_TLS_CLIENT_CERT/KEY) here")

    def _refused(self, resp) -> None:
        if getattr(resp, "status_code", None) == 401 or getattr(resp, "status", None) == 401:
            what = "refused this worker's API token" if "authorization" in self.http.headers \
                else "needs an API token, and this worker has none"
            raise Unauthorized(f"miniboxd at {self.url} {what}",
                               hint="set MINIBOX_API_TOKEN for this worker to the daemon's "
                                    "token (the daemon's DATA_ROOT/run/api-token)")

    def check(self) -> None:
        """One authenticated request: the token and the network are right, or a clear error."""
        import httpx

        try:
            resp = self.http.get("/version", timeout=30)
        except httpx.TransportError as e:
            raise self._fail("cannot reach the API", e) from None
        self._refused(resp)
        if resp.status_code != 200:
            raise DaemonUnavailable(f"miniboxd at {self.url} answered {resp.status_code} "
                                    "to GET /version", hint="is MINIBOX_PUBLIC_URL the daemon's?")

    def _direct(self):
        """A plain http.client connection for blob bodies over TCP (None on a unix socket):
        it moves a layer several times faster than httpx, whose h11 reads 64 KiB per event
        (a 100 MB layer: ~75 MB/s through httpx, the socket's pace through this)."""
        import http.client
        from urllib.parse import urlsplit

        u = urlsplit(self.url)
        if u.scheme == "https":
            return http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=600,
                                               context=_tls(self.settings), blocksize=CHUNK)
        if u.scheme == "http":
            return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600,
                                              blocksize=CHUNK)
        return None

    def fetch_blob(self, store, digest: str, media_type: str) -> None:
        import http.client

        from minibox.store.compress import BackgroundSink

        conn = self._direct()
        if conn is None:
            return self._fetch_blob_httpx(store, digest, media_type)
        try:
            conn.request("GET", f"/blobs/{digest}", headers=dict(self.auth))
            resp = conn.getresponse()
            self._refused(resp)
            if resp.status != 200:
                raise StoreError(f"the daemon has no blob {digest} ({resp.status})")
            size = resp.length
            with store.open_blob_writer(media_type, expected_digest=digest) as w:
                with BackgroundSink(w) as sink:     # hashed and written while the next
                    while chunk := resp.read(CHUNK):    # chunk arrives
                        sink.write(chunk)
                if size is not None and w.size != size:     # nothing half is committed
                    raise http.client.IncompleteRead(b"", size - w.size)
        except (OSError, http.client.HTTPException) as e:
            raise self._fail(f"cannot fetch {digest}", e) from None
        finally:
            conn.close()

    def _fetch_blob_httpx(self, store, digest: str, media_type: str) -> None:
        import httpx

        try:
            with self.http.stream("GET", f"/blobs/{digest}") as resp:
                self._refused(resp)
                if resp.status_code != 200:
                    raise StoreError(f"the daemon has no blob {digest} ({resp.status_code})")
                with store.open_blob_writer(media_type, expected_digest=digest) as w:
                    for chunk in resp.iter_raw(CHUNK):    # blobs are sent as they are
                        w.write(chunk)
        except httpx.TransportError as e:
            raise self._fail(f"cannot fetch {digest}", e) from None

    def has_blob(self, digest: str) -> bool:
        import httpx

        try:
            resp = self.http.head(f"/blobs/{digest}")
        except httpx.TransportError as e:
            raise self._fail(f"cannot look up {digest}", e) from None
        self._refused(resp)
        return resp.status_code == 200

    def push_blob(self, store, digest: str) -> None:
        import http.client

        conn = self._direct()
        if conn is None:
            return self._push_blob_httpx(store, digest)
        path = store.blob_path(digest)
        try:
            with open(path, "rb") as f:
                conn.putrequest("PUT", f"/blobs/{digest}", skip_accept_encoding=True)
                for k, v in {**self.auth, "Content-Length": str(os.fstat(f.fileno()).st_size),
                             "Content-Type": "application/octet-stream"}.items():
                    conn.putheader(k, v)
                conn.endheaders()
                if isinstance(conn, http.client.HTTPSConnection):
                    conn.send(f)            # read and encrypted a MiB at a time
                else:
                    conn.sock.sendfile(f)   # the kernel copies file to socket
            resp = conn.getresponse()
            text = resp.read(200).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            raise self._fail(f"cannot send {digest}", e) from None
        finally:
            conn.close()
        self._refused(resp)
        if resp.status >= 300:
            raise StoreError(f"the daemon refused layer {digest}: {text}")

    def _push_blob_httpx(self, store, digest: str) -> None:
        import httpx

        def body():
            with open(store.blob_path(digest), "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        try:
            resp = self.http.put(f"/blobs/{digest}", content=body())
        except httpx.TransportError as e:
            raise self._fail(f"cannot send {digest}", e) from None
        self._refused(resp)
        if resp.status_code >= 300:
            raise StoreError(f"the daemon refused layer {digest}: {resp.text[:200]}")

    def fetch_context(self, job: str, dest: Path) -> None:
        import httpx

        from minibox.builder.context import unpack_context

        try:
            with self.http.stream("GET", f"/builds/{job}/context") as resp:
                self._refused(resp)
                if resp.status_code != 200:
                    raise StoreError(f"the daemon has no context for job {job} "
                                     f"({resp.status_code})")
                unpack_context(_Reader(resp.iter_bytes(CHUNK)), dest)
        except httpx.TransportError as e:
            raise self._fail(f"cannot fetch the context of job {job}", e) from None


class _Reader:
    """A file-like read() over an iterator of byte chunks (for the tar reader)."""

    def __init__(self, chunks):
        self.chunks, self.buf = iter(chunks), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                break
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


def is_remote(daemon_root: str | None, settings) -> bool:
    """True when this worker does not share the daemon's data root."""
    return bool(daemon_root) and \
        os.path.realpath(daemon_root) != os.path.realpath(settings.data_root)


def connect(job: BlockJob, settings) -> Daemon:
    return Daemon(job.daemon_url, settings)


def _tls(settings):
    """The client side of https: trust MINIBOX_TLS_CA (else the system's CAs), present
    MINIBOX_TLS_CLIENT_CERT/KEY when given."""
    import ssl

    ctx = ssl.create_default_context(cafile=settings.tls_ca)
    if settings.tls_client_cert:
        ctx.load_cert_chain(settings.tls_client_cert, settings.tls_client_key)
    return ctx


def check_daemon(settings, redis) -> str | None:
    """At a build worker's start: when the farm's daemon (as it announced itself on the
    broker) keeps its data on another root than this worker, this worker will call its API;
    check that it can, now.  The daemon's URL, or None when there is nothing to check."""
    rec = {k.decode(): v.decode() for k, v in redis.hgetall(DAEMON_RECORD).items()}
    if not rec.get("url") or not is_remote(rec.get("data_root"), settings):
        return None
    try:
        Daemon(rec["url"], settings).check()
    except (OSError, ValueError) as e:          # ssl: an unreadable CA or client cert
        raise MiniBoxError(f"cannot set up TLS to miniboxd at {rec['url']}: {e}",
                           hint="check MINIBOX_TLS_CA, MINIBOX_TLS_CLIENT_CERT and "
                                "MINIBOX_TLS_CLIENT_KEY") from None
    return rec["url"]


def prepare(job: BlockJob, store, settings) -> tuple[Daemon, BlockJob]:
    """Fetch what a remote block needs: its layers' blobs and the job's context.  Returns
    the daemon and the job with its context_dir on this machine."""
    from minibox.store.layertar import LayerInfo

    daemon = connect(job, settings)
    layers = list(job.lowers) + [x for ls in job.copy_from.values() for x in ls]
    for raw in layers:
        layer = LayerInfo.from_dict(raw)
        if not store.has_layer_dir(layer.diff_id) and not store.has_blob(layer.digest):
            daemon.fetch_blob(store, layer.digest, layer.media_type)
    return daemon, job.with_context(str(_context(job.job, daemon, settings)))


def _context(job: str, daemon: Daemon, settings) -> Path:
    """The job's context on this machine, fetched once per job (temp dir + rename)."""
    root = Path(settings.data_root) / "contexts"
    dest = root / f"remote-{job}"
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("remote-*"):       # contexts of jobs long finished
        try:
            if time.time() - old.stat().st_mtime > 86400:
                remove_tree(old, ignore_errors=True)
        except OSError:
            pass
    work = root / f".remote-{job}-{os.getpid()}-{time.monotonic_ns()}"
    work.mkdir()
    try:
        daemon.fetch_context(job, work)
        os.rename(work, dest)
    except OSError:
        if not dest.is_dir():
            raise
    finally:
        remove_tree(work, ignore_errors=True)
    return dest

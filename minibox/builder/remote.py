"""Build workers on another machine: what they fetch from the daemon and send back.

A worker whose data root is not the daemon's (the payload says which root the daemon uses)
cannot read the uploaded context or the layers on the daemon's disk.  It fetches the
context as a tar (``GET /builds/{job}/context``) and every layer blob it lacks by digest
(``GET /blobs/{digest}``, verified while it is written), and after committing its block it
sends the new layer's blob back (``PUT /blobs/{digest}``, verified by the daemon), so the
daemon can stack it into the image and later blocks anywhere can fetch it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from minibox.errors import DaemonUnavailable, MiniBoxError, StoreError
from minibox.rmtree import remove_tree

CHUNK = 1 << 20


class Daemon:
    """The daemon's blob and context endpoints, seen from a build worker."""

    def __init__(self, url: str, token: str | None = None):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if url.startswith("unix://"):
            self.http = httpx.Client(base_url="http://miniboxd", headers=headers,
                                     transport=httpx.HTTPTransport(uds=url[7:]), timeout=600)
        else:
            self.http = httpx.Client(base_url=url, headers=headers, timeout=600)
        self.url = url

    def _fail(self, what: str, e: Exception) -> MiniBoxError:
        return DaemonUnavailable(f"{what} from miniboxd at {self.url}: {e}",
                                 hint="check MINIBOX_PUBLIC_URL on the daemon and the "
                                      "network between this worker and it")

    def fetch_blob(self, store, digest: str, media_type: str) -> None:
        import httpx

        try:
            with self.http.stream("GET", f"/blobs/{digest}") as resp:
                if resp.status_code != 200:
                    raise StoreError(f"the daemon has no blob {digest} ({resp.status_code})")
                with store.open_blob_writer(media_type, expected_digest=digest) as w:
                    for chunk in resp.iter_bytes(CHUNK):
                        w.write(chunk)
        except httpx.TransportError as e:
            raise self._fail(f"cannot fetch {digest}", e) from None

    def has_blob(self, digest: str) -> bool:
        import httpx

        try:
            return self.http.head(f"/blobs/{digest}").status_code == 200
        except httpx.TransportError as e:
            raise self._fail(f"cannot look up {digest}", e) from None

    def push_blob(self, store, digest: str) -> None:
        import httpx

        def body():
            with open(store.blob_path(digest), "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        try:
            resp = self.http.put(f"/blobs/{digest}", content=body())
        except httpx.TransportError as e:
            raise self._fail(f"cannot send {digest}", e) from None
        if resp.status_code >= 300:
            raise StoreError(f"the daemon refused layer {digest}: {resp.text[:200]}")

    def fetch_context(self, job: str, dest: Path) -> None:
        import httpx

        from minibox.builder.context import unpack_context

        try:
            with self.http.stream("GET", f"/builds/{job}/context") as resp:
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


def is_remote(payload: dict, settings) -> bool:
    """True when this worker does not share the daemon's data root."""
    root = payload.get("data_root")
    return bool(root) and os.path.realpath(root) != os.path.realpath(settings.data_root)


def connect(payload: dict) -> Daemon:
    return Daemon(payload["daemon_url"], os.environ.get("MINIBOX_API_TOKEN") or None)


def prepare(payload: dict, store, settings) -> Daemon:
    """Fetch what a remote block needs: its layers' blobs and the job's context."""
    from minibox.store.layertar import LayerInfo

    daemon = connect(payload)
    layers = list(payload["lowers"]) + [x for ls in payload.get("copy_from", {}).values()
                                        for x in ls]
    for raw in layers:
        layer = LayerInfo.from_dict(raw)
        if not store.has_layer_dir(layer.diff_id) and not store.has_blob(layer.digest):
            daemon.fetch_blob(store, layer.digest, layer.media_type)
    payload["context_dir"] = str(_context(payload["job"], daemon, settings))
    return daemon


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

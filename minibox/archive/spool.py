"""An image archive read once, as it arrives (an upload, a pipe): ``spool``.

The archive is data and is never unpacked.  Its tar stream (plain, gzip or zstd, told by
magic bytes; inflated under the layer limits) is read member by member: small files are
kept in memory (the JSON documents), large ones (the layers) go straight into the blob
store, hashed as they are copied: a member named ``blobs/sha256/<hex>`` must hash to that
digest, any other is stored under the digest it hashes to.  So a layer is read, hashed and
written once, while the rest of the archive is still on its way; its fsync runs beside
the copy of the next one.  Links and directories are noted by name.  ``Archive`` then
answers by name, following a symlink or hard link only to another member.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tarfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import zstandard

from minibox.errors import StoreError, UserError
from minibox.space.hold import claim_blob
from minibox.store import Store
from minibox.store.layerreader import INFLATE_ERRORS, Chunks, LayerReader, open_tar
from minibox.store.oci import MEDIA_LAYER, MEDIA_LAYER_GZIP, MEDIA_LAYER_ZSTD, Descriptor
from minibox.store.untar import Limits

_CHUNK = 1 << 20
_IN_MEMORY = 1 << 20            # a member up to this size is kept in memory ...
_MEMORY_BUDGET = 64 << 20       # ... while the members kept take less than this
_MAX_HOPS = 16
_BLOB_NAME = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")


@dataclass
class Member:
    kind: str                        # "file", "symlink", "hardlink" or "other"
    size: int = 0
    data: bytes | None = None        # a small file's bytes
    blob: Descriptor | None = None   # a large file, stored as a blob by its content
    link: str = ""


class Archive:
    """The members of a spooled archive, by normalized name."""

    def __init__(self, store: Store, label: str):
        self.store = store
        self.label = label
        self.members: dict[str, Member] = {}

    def has(self, name: str) -> bool:
        return self.find(name, quiet=True) is not None

    def find(self, name: str, quiet: bool = False) -> Member | None:
        """The regular file ``name`` is (or links to); UserError when there is none."""
        key = norm(name)
        for _ in range(_MAX_HOPS):
            m = self.members.get(key) if key is not None else None
            if m is None:
                if quiet:
                    return None
                raise UserError(f"{self.label}: '{name[:200]}' is not in the archive",
                                hint="the archive is incomplete or not an image archive")
            if m.kind == "symlink":
                key = norm(posixpath.join(posixpath.dirname(key), m.link))
            elif m.kind == "hardlink":
                key = norm(m.link)
            elif m.kind == "file":
                return m
            else:
                raise UserError(f"{self.label}: '{name[:200]}' is not a regular file")
        raise UserError(f"{self.label}: '{name[:200]}' is a loop of links")

    def read(self, name: str, limit: int) -> bytes:
        m = self.find(name)
        if m.size > limit:
            raise UserError(f"{self.label}: '{name[:200]}' is too large ({m.size} bytes)")
        if m.data is not None:
            return m.data
        return self.store.read_blob(m.blob.digest)

    def json(self, name: str, limit: int):
        try:
            return json.loads(self.read(name, limit))
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{self.label}: '{name[:200]}' is not valid JSON") from None


def norm(name: str) -> str | None:
    """A member name as a relative path; None for names that point outside the archive."""
    path = posixpath.normpath("/" + name.lstrip("/")).lstrip("/") if name else ""
    if not path or path == "." or ".." in path.split("/"):
        return None
    return path


def layer_media_type(head: bytes) -> str:
    """The layer media type of a blob that starts with ``head``."""
    return {b"\x1f\x8b": MEDIA_LAYER_GZIP, b"\x28\xb5": MEDIA_LAYER_ZSTD}.get(head[:2],
                                                                           MEDIA_LAYER)


class Spooler:
    """Reads one archive into an ``Archive``; ``created`` are the blobs it added to the
    store (the caller removes them on a failure, and those no image uses)."""

    def __init__(self, store: Store, label: str, progress: Callable[[dict], None]):
        self.store, self.label, self.progress = store, label, progress
        self.archive = Archive(store, label)
        self.created: list[str] = []
        self._kept = 0
        self._commits: list[Future] = []
        self._lock = threading.Lock()

    def spool(self, chunks: Chunks) -> Archive:
        limits = Limits.from_env()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="load-sync") as pool:
            try:
                reader = LayerReader(chunks, limits, self.label, hashed=False)
                with open_tar(reader) as tar:
                    count = 0
                    for m in tar:
                        count += 1
                        limits.check_entries(count, self.label)
                        self._member(tar, m, pool)
            except (tarfile.TarError, EOFError) as e:
                raise UserError(f"{self.label} is not a valid tar archive: {e}",
                                hint="give a file written by `minibox save`, `podman save`, "
                                     "`skopeo copy` or `docker save`") from None
            except (zstandard.ZstdError, *INFLATE_ERRORS) as e:
                raise UserError(f"{self.label} cannot be decompressed: {e}") from None
            finally:
                for f in self._commits:
                    f.exception()                      # every commit done, failed or not
        for f in self._commits:
            f.result()
        return self.archive

    def _member(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pool) -> None:
        name = norm(m.name)
        if name is None:
            return
        members = self.archive.members
        if m.issym() or m.islnk():
            members[name] = Member("symlink" if m.issym() else "hardlink", link=m.linkname)
        elif not m.isreg():
            members[name] = Member("other")
        elif m.sparse is not None:
            raise UserError(f"{self.label}: '{name[:200]}' is a sparse file, which no image "
                            f"archive holds")
        elif m.size <= _IN_MEMORY and self._kept + m.size <= _MEMORY_BUDGET:
            self._kept += m.size
            members[name] = Member("file", m.size, data=tar.extractfile(m).read())
        else:
            members[name] = Member("file", m.size, blob=self._store(tar, m, name, pool))

    def _store(self, tar: tarfile.TarFile, m: tarfile.TarInfo, name: str, pool) -> Descriptor:
        """Copy a large member into the blob store; its commit (the digest check, the
        fsync and the rename) runs on ``pool`` while the next member is read."""
        source = tar.extractfile(m)
        named = _BLOB_NAME.match(name)
        expected = f"sha256:{named.group(1)}" if named else None
        if expected and claim_blob(self.store.root, self.store.blob_path(expected)):
            try:                                            # stored: not copied again
                size = os.stat(self.store.blob_path(expected)).st_size
            except FileNotFoundError:
                pass
            else:
                return Descriptor(expected, size, layer_media_type(source.read(8)))
        head = source.read(_CHUNK)
        self.progress({"id": named.group(1)[:12] if named else name[-40:],
                       "status": "Loading layer"})
        writer = self.store.open_blob_writer(layer_media_type(head), expected_size=m.size,
                                             expected_digest=expected, sync_dir=False)
        try:
            writer.write(head)
            while chunk := source.read(_CHUNK):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        self._commits.append(pool.submit(self._commit, writer, name))
        return Descriptor(writer.digest, m.size, writer.media_type)

    def _commit(self, writer, name: str) -> None:
        try:
            desc = writer.commit()
        except StoreError as e:
            raise UserError(f"{self.label}: '{name[:200]}' is corrupt: {e.message}",
                            hint="the archive is damaged; nothing was loaded") from None
        if writer.created:
            with self._lock:
                self.created.append(desc.digest)

"""``index.json``: the tags of the data root, one entry per normalized ``name:tag``.

Readers just read the file (it is only ever replaced by rename).  Writers take an exclusive
``flock`` on ``index.json.lock``, re-read, modify, write a temp file and rename it, so the
daemon and the build workers can tag concurrently without losing each other's entries.
Entries this module did not write (no ref name, foreign annotations) are kept untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from minibox.errors import StoreError, UserError
from minibox.atomic import write_file
from minibox.store.layout import Layout
from minibox.store.oci import MEDIA_INDEX, PULLED_BY, REF_NAME_ANNOTATION, Descriptor

# The distribution reference grammar, lowercase repository paths with an optional
# registry host[:port] first and a tag last.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_NAME_RE = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def normalize_name(name: str) -> str:
    """``app`` -> ``app:latest``; ``host:5000/app`` -> ``host:5000/app:latest``.

    UserError for names that are not valid image references.
    """
    text = (name or "").strip()
    repo, tag = split_tag(text)
    tag = "latest" if tag is None else tag
    if len(repo) > 255 or not _NAME_RE.match(repo) or not _TAG_RE.match(tag):
        raise UserError(f"invalid image name {name!r}",
                        hint="use lowercase letters, digits and . _ - separators, "
                             "optionally a registry host and a :tag, e.g. myapp:1.0")
    return f"{repo}:{tag}"


def split_tag(ref: str) -> tuple[str, str | None]:
    """Split ``repo[:tag]`` on the last colon after the last slash (ports stay in repo)."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, None


class IndexFile:
    def __init__(self, layout: Layout):
        self._layout = layout

    def read(self) -> dict:
        """The parsed index (an empty one when the file does not exist yet)."""
        try:
            data = self._layout.index_json.read_bytes()
        except FileNotFoundError:
            return _empty_index()
        try:
            index = json.loads(data)
        except ValueError as e:
            raise StoreError(f"corrupt {self._layout.index_json}: {e}",
                             hint="restore it from a backup, or remove it to start over "
                                  "(blobs and layers are kept)") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise StoreError(f"corrupt {self._layout.index_json}: not an OCI image index")
        index.setdefault("manifests", [])
        return index

    def lookup(self, name: str) -> Descriptor | None:
        """The descriptor tagged ``name`` (normalized), or None."""
        wanted = normalize_name(name)
        for entry in self.read()["manifests"]:
            if _ref_name(entry) == wanted:
                return self._descriptor(entry)
        return None

    def tagged(self) -> list[tuple[str, Descriptor]]:
        """Every (name, descriptor) with a ref name, sorted by name."""
        out = [(_ref_name(e), self._descriptor(e)) for e in self.read()["manifests"]
               if _ref_name(e)]
        return sorted(out, key=lambda pair: pair[0])

    def entries(self) -> list[tuple[str | None, Descriptor]]:
        """Every (name or None, descriptor), tagged or not, in file order."""
        return [(_ref_name(e), self._descriptor(e)) for e in self.read()["manifests"]]

    def keep_untagged(self, descriptor: Descriptor, source: str) -> None:
        annotations = dict(descriptor.annotations)
        annotations[PULLED_BY] = source
        entry = Descriptor(descriptor.digest, descriptor.size, descriptor.media_type,
                           annotations, descriptor.platform).to_oci()

        def change(manifests: list[dict]) -> list[dict]:
            kept = [e for e in manifests
                    if _ref_name(e) or e.get("digest") != descriptor.digest]
            return kept + [entry]

        self.update(change)

    def _descriptor(self, entry: dict) -> Descriptor:
        try:
            return Descriptor.from_oci(entry)
        except (UserError, KeyError, TypeError, ValueError):
            raise StoreError(f"corrupt {self._layout.index_json}: bad entry {entry!r}",
                             hint="remove that entry, or untag the image") from None

    def set(self, name: str, descriptor: Descriptor) -> str:
        """Point ``name`` at ``descriptor`` (replacing any earlier entry); returns the name."""
        name = normalize_name(name)
        annotations = dict(descriptor.annotations)
        annotations[REF_NAME_ANNOTATION] = name
        entry = Descriptor(descriptor.digest, descriptor.size, descriptor.media_type,
                           annotations, descriptor.platform).to_oci()

        def change(manifests: list[dict]) -> list[dict]:
            kept = [e for e in manifests if _ref_name(e) != name]
            return kept + [entry]

        self.update(change)
        return name

    def remove(self, name: str) -> bool:
        """Drop ``name``; False if it was not there."""
        name = normalize_name(name)
        found = False

        def change(manifests: list[dict]) -> list[dict]:
            nonlocal found
            kept = [e for e in manifests if _ref_name(e) != name]
            found = len(kept) != len(manifests)
            return kept

        self.update(change)
        return found

    def update(self, change: Callable[[list[dict]], list[dict]]) -> None:
        """Apply ``change`` to the manifest list under the index lock."""
        with self.locked():
            index = self.read()
            index["manifests"] = change(index["manifests"])
            self._write(index)

    def ensure_exists(self) -> None:
        if not self._layout.index_json.exists():
            self.update(lambda manifests: manifests)

    @contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self._layout.index_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _write(self, index: dict) -> None:
        index["schemaVersion"] = 2
        index["mediaType"] = MEDIA_INDEX
        data = json.dumps(index, indent=2, sort_keys=False).encode() + b"\n"
        write_file(self._layout.index_json, data, tmp_dir=self._layout.tmp)


def _ref_name(entry: dict) -> str | None:
    name = (entry.get("annotations") or {}).get(REF_NAME_ANNOTATION)
    if not name:
        return None
    try:
        return normalize_name(name)
    except UserError:
        return name


def _empty_index() -> dict:
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}

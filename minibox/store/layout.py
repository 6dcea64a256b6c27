"""Where things live in the data root, and the primitives for writing there safely.

The data root is an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``) with
MiniBox's own directories beside it::

    oci-layout  index.json  index.json.lock  blobs/sha256/<hex>
    layers/<diff_id hex>/   unpacked layers in overlay format (lowerdirs)
    bases/<hex>.json        archive digest -> LayerInfo of imported base tarballs
    cache/                  owned by the build cache (never written here)
    tmp/                    in-progress work; same filesystem, so rename is atomic

Every write goes to a temp file under ``tmp/``, is fsynced and renamed into place, and the
parent directory is fsynced (minibox.atomic's rule); a crash leaves at worst junk in ``tmp/``
that nobody trusts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

from minibox.atomic import fsync_dir, write_file
from minibox.errors import StoreError

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}


class Layout:
    """The paths of one data root (no I/O beyond ``create``)."""

    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        self.oci_layout = self.root / "oci-layout"
        self.index_json = self.root / "index.json"
        self.index_lock = self.root / "index.json.lock"
        self.blobs = self.root / "blobs" / "sha256"
        self.layers = self.root / "layers"
        self.bases = self.root / "bases"
        self.tmp = self.root / "tmp"

    def create(self) -> None:
        """Make the directories and the ``oci-layout`` file if missing (idempotent)."""
        try:
            for d in (self.root, self.blobs, self.layers, self.bases):
                d.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(mode=0o700, exist_ok=True)
            if not self.oci_layout.exists():
                write_file(self.oci_layout, json.dumps(OCI_LAYOUT), tmp_dir=self.tmp)
        except OSError as e:
            raise StoreError(f"cannot initialise data root {self.root}: {e.strerror}",
                             hint="run as root, or point MINIBOX_DATA_ROOT at a writable "
                                  "directory") from e


def rename_dir_noreplace(src: Path, dest: Path) -> bool:
    """Rename a finished directory into place.  False if ``dest`` already holds one.

    ``rename(2)`` replaces only an *empty* target directory; a non-empty one makes it fail
    with ENOTEMPTY/EEXIST, which is how two writers of the same content-addressed dir agree.
    """
    try:
        os.rename(src, dest)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    fsync_dir(dest.parent)
    return True


def remove_tree(path: Path) -> None:
    """Remove a file or directory tree with nothing mounted below it.  A mount point itself
    is emptied, not removed (its owner unmounts it)."""
    try:
        if path.is_dir() and not path.is_symlink():
            if os.path.ismount(path):
                for child in path.iterdir():
                    remove_tree(child)
                return
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def mount_points_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` in this mount namespace (from mountinfo)."""
    return [point for point, _ in mounts_under(path)]


def mounts_under(path: Path) -> list[tuple[Path, str]]:
    """(mount point, filesystem type) at or below ``path``, from /proc/self/mountinfo."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split(b" ")
                point = _unescape_mountinfo(fields[4])
                fstype = os.fsdecode(fields[fields.index(b"-") + 1])
                if point.startswith(prefix) or point == prefix[:-1]:
                    found.append((Path(point), fstype))
    except OSError:
        pass
    return found


def _unescape_mountinfo(field: bytes) -> str:
    text = os.fsdecode(field)
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def clean_dir_entries(directory: Path, older_than: float) -> int:
    """Remove entries of ``directory`` not modified for ``older_than`` seconds.

    Entries holding a mount point are skipped: removing through a live overlay or bind mount
    would destroy what is mounted there.
    """
    cutoff = time.time() - older_than
    busy = {m.relative_to(directory).parts[0] for m in mount_points_under(directory)
            if m != directory}
    removed = 0
    for entry in os.scandir(directory):
        if entry.name in busy:
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        remove_tree(Path(entry.path))
        removed += 1
    return removed


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

"""Fixtures for the store tests: a scratch area under /var/tmp (overlayfs and xattrs work
there), a Store in it, and real overlay mounts that are always unmounted."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from minibox.store import Store
from minibox.store.layout import mount_points_under

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, "
                                "overlay mounts, trusted.* xattrs)")


@pytest.fixture
def scratch():
    """A temp dir on the same filesystem as the store; every mount below it is undone and
    the dir removed, whether the test passed or not."""
    path = Path(tempfile.mkdtemp(prefix="mb-store-test-", dir="/var/tmp"))
    try:
        yield path
    finally:
        for point in sorted(mount_points_under(path), key=lambda p: len(str(p)),
                            reverse=True):
            subprocess.run(["umount", "-l", str(point)], check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store(scratch) -> Store:
    return Store(scratch / "root")


@contextmanager
def overlay(merged: Path, lowers: list[Path], upper: Path | None = None,
            work: Path | None = None, options: str = "redirect_dir=off,metacopy=off"):
    """Mount overlayfs at ``merged`` (lowers top-most first); always unmounted."""
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None:
        opts += f",upperdir={upper},workdir={work}"
    if options:
        opts += "," + options
    merged.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                   check=True, capture_output=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def cap_net_bind_service() -> bytes:
    """A version-2 security.capability value granting cap_net_bind_service (bit 10)."""
    import struct
    return struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)

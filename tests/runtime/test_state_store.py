"""The container store's directory: on ext4 its containers are spread over the block groups
(each one a hierarchy of its own, ``chattr +T``), elsewhere it is just a directory."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import tempfile

import pytest

from minibox import kernel
from minibox.runtime.state import StateStore


def _flags(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, 0x80086601, buf, True)      # FS_IOC_GETFLAGS
        return struct.unpack_from("i", buf)[0]
    finally:
        os.close(fd)


@pytest.mark.parametrize("where", ["/var/tmp", "/dev/shm"])
def test_the_containers_dir_is_a_top_of_hierarchies_where_the_fs_has_the_flag(where):
    root = tempfile.mkdtemp(prefix="mbt-store-", dir=where)
    try:
        store = StateStore(root)
        store.ensure()
        store.ensure()                                   # idempotent
        fstype = subprocess.run(["findmnt", "-no", "FSTYPE", "--target", root],
                                capture_output=True, text=True).stdout.strip()
        if fstype != "ext4":
            assert store.root.is_dir()                    # no such flag there: nothing else
            return
        assert _flags(str(store.root)) & kernel.FS_TOPDIR_FL
        cid = "a" * 64
        (store.root / cid).mkdir()                        # still an ordinary directory
        assert not _flags(str(store.root / cid)) & kernel.FS_TOPDIR_FL
    finally:
        shutil.rmtree(root)

"""A real image with VOLUMEs for the volume tests: busybox plus two layers of /data content
(owners, modes, a symlink, a whiteout), written into the farm's store with the store API."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from tests.runtime.images import BUSYBOX_TGZ, GZIP_LAYER, busybox_config

TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _tar(entries: list[tuple]) -> bytes:
    """entries: (name, kind 'dir'|'file'|'link', mode, uid, gid, data-or-target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, mode, uid, gid, payload in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1_700_000_000
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                t.addfile(info)
            else:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


LAYER_DATA = [
    ("data", "dir", 0o750, 1000, 1000, None),
    ("data/hello.txt", "file", 0o640, 1000, 1001, b"hello from the image\n"),
    ("data/link", "link", 0o777, 0, 0, "hello.txt"),
    ("data/sub", "dir", 0o700, 1002, 1002, None),
    ("data/sub/deep.txt", "file", 0o600, 1002, 1002, b"deep\n"),
    ("data/gone.txt", "file", 0o644, 0, 0, b"hidden by the next layer\n"),
]
LAYER_TOP = [
    ("data", "dir", 0o750, 1000, 1000, None),     # as a real layer has its parents
    ("data/.wh.gone.txt", "file", 0o644, 0, 0, b""),
    ("data/new.txt", "file", 0o644, 0, 0, b"from the top layer\n"),
]


def import_volume_image(data_root: Path, name: str = "bb-vol") -> str:
    """Tag ``name``: busybox + /data content, VOLUME /data and /cache (not in the image)."""
    return import_layered_image(data_root, name, [LAYER_DATA, LAYER_TOP],
                                Volumes={"/data": {}, "/cache": {}})


def import_layered_image(data_root: Path, name: str, tars: list[list[tuple]], **config) -> str:
    """Tag ``name``: busybox plus one layer per entry list (see ``_tar``)."""
    from minibox.store import LayerInfo, Store
    store = Store(data_root)
    import gzip
    raw_base = BUSYBOX_TGZ.read_bytes()
    base_desc = store.put_blob_bytes(raw_base, GZIP_LAYER)
    layers = [LayerInfo(diff_id="sha256:" + hashlib.sha256(gzip.decompress(raw_base)).hexdigest(),
                        digest=base_desc.digest, size=base_desc.size, media_type=GZIP_LAYER)]
    for entries in tars:
        raw = _tar(entries)
        desc = store.put_blob_bytes(raw, TAR_LAYER)
        layers.append(LayerInfo(diff_id=desc.digest, digest=desc.digest, size=desc.size,
                                media_type=TAR_LAYER))
    store.write_image(name, busybox_config(**config), layers)
    return name

"""The ONE place the runtime tests get their images from.

It imports the offline busybox base (docker-free-dev/make-base-images.sh) into a Store,
through ``minibox.builder.base.resolve_base`` when the build farm provides it, else by
writing the tarball as a layer blob directly.  Switch to another source here only.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

BUSYBOX_TGZ = Path(os.environ.get("MINIBOX_DEV_CACHE", "/var/cache/minibox-dev")) / "busybox.tar.gz"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def busybox_config(**extra) -> dict:
    cfg = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "Cmd": ["/bin/sh"], "WorkingDir": "/"}
    cfg.update(extra)
    return cfg


def import_busybox(data_root: Path, name: str = "busybox", **config) -> str:
    """Tag ``name`` as the busybox rootfs with the given config section; returns the name."""
    from minibox.store import LayerInfo, Store
    store = Store(data_root)
    with open(BUSYBOX_TGZ, "rb") as f:
        data = f.read()
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    desc = store.put_blob_bytes(data, GZIP_LAYER)
    layer = LayerInfo(diff_id=diff_id, digest=desc.digest, size=desc.size, media_type=GZIP_LAYER)
    store.write_image(name, busybox_config(**config), [layer])
    return name


def break_layers(data_root: Path, name: str) -> None:
    """Make ``name``'s layers unusable (blob and unpacked dir gone) for the bad-input tests."""
    from minibox.store import Store
    store = Store(data_root)
    img = store.resolve(name)
    for layer in img.layer_infos():
        shutil.rmtree(store.layer_dir(layer.diff_id), ignore_errors=True)
        try:
            os.unlink(store.blob_path(layer.digest))
        except FileNotFoundError:
            pass

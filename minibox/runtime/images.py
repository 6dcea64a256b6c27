"""From an image reference to what a container needs: config, digest, unpacked layer dirs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from minibox.errors import MiniBoxError, NotFound, UserError


@dataclass
class ResolvedImage:
    ref: str
    name: str
    digest: str
    config: dict          # the OCI config's "config" section (Env, Cmd, User ...)
    layers: list[str]     # unpacked layer dirs, TOP FIRST (overlay lowerdir order)


_STORES: dict[str, object] = {}


def store_for(data_root) -> object:
    from minibox.store import Store
    key = str(data_root)
    if key not in _STORES:
        _STORES[key] = Store(data_root)
    return _STORES[key]


def resolve(data_root, ref: str) -> ResolvedImage:
    store = store_for(data_root)
    try:
        img = store.resolve(ref)
    except NotFound:
        raise NotFound(f"image '{ref}' not found",
                       hint="build it with `minibox build -t NAME .`; `minibox images` lists images") from None
    try:
        dirs = [str(store.ensure_layer_dir(layer)) for layer in img.layer_infos()]
    except MiniBoxError as e:
        raise UserError(f"image '{ref}' cannot be used: {e.message}",
                        hint="its layers are missing or damaged: rebuild or re-pull it") from None
    if not dirs:
        raise UserError(f"image '{ref}' has no layers", hint="it has no filesystem to run")
    for d in dirs:
        if not os.path.isdir(d):
            raise UserError(f"image '{ref}' cannot be used: layer dir {d} is missing",
                            hint="rebuild or re-pull the image")
    return ResolvedImage(ref=ref, name=img.name or ref, digest=img.digest,
                         config=img.runtime_config, layers=list(reversed(dirs)))


def read_image_file(layers: list[str], path: str) -> str | None:
    """A small text file from the image (top layer first; a whiteout hides it)."""
    rel = path.lstrip("/")
    parent, base = os.path.split(rel)
    for d in layers:
        if os.path.lexists(os.path.join(d, parent, ".wh." + base)):
            return None
        p = os.path.join(d, rel)
        if os.path.islink(p):
            return None   # rare for /etc/passwd; not followed outside the image
        if os.path.isfile(p):
            try:
                with open(p, encoding="utf-8", errors="replace") as f:
                    return f.read(1 << 20)
            except OSError:
                return None
    return None

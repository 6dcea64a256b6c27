"""From an image reference to what a container needs: config, digest, unpacked layer dirs."""

from __future__ import annotations

import os
import shutil
import stat
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


# (data root, ref) -> (the index file's stat when resolved, the image): a start resolves its
# image every time, and manifests, configs and layers are content-addressed, so only a new
# index (a tag moved, an image removed) or a vanished layer dir makes an entry stale
_RESOLVED: dict[tuple[str, str], tuple[tuple, ResolvedImage]] = {}


def resolve(data_root, ref: str) -> ResolvedImage:
    store = store_for(data_root)
    try:
        st = os.stat(store.layout.index_json)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    key = (str(data_root), ref)
    hit = _RESOLVED.get(key)
    if stamp and hit and hit[0] == stamp and all(os.path.isdir(d) for d in hit[1].layers):
        return hit[1]
    image = _resolve(store, ref)
    if stamp:
        if len(_RESOLVED) >= 256:
            _RESOLVED.clear()
        _RESOLVED[key] = (stamp, image)
    return image


def _resolve(store, ref: str) -> ResolvedImage:
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


def image_volumes(image: ResolvedImage) -> list[str]:
    """The image's VOLUME paths (its config's ``Volumes``), normalized."""
    from minibox.runtime.spec import check_target
    out = []
    for path in sorted(image.config.get("Volumes") or {}):
        try:
            check_target(str(path), str(path))
        except UserError:
            raise UserError(f"image '{image.ref}' declares an invalid VOLUME {path!r}",
                            hint="an absolute path other than /, /proc, /sys, /dev") from None
        out.append(os.path.normpath(path))
    return out


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


# --- copy-up: an image directory into a new volume (Docker copies it when it is empty) ----
WHITEOUT_PREFIX = ".wh."
OPAQUE_XATTR = "trusted.overlay.opaque"


def copy_image_dir(layers: list[str], path: str, dest: str) -> bool:
    """Copy what the image shows at ``path`` (layers top first, whiteouts and opaque dirs
    applied as overlayfs would) into the existing directory ``dest``: content, modes,
    owners, times and symlinks; ``dest`` itself takes the directory's owner and mode.
    False (and nothing copied) when the image has no directory there."""
    rel = path.strip("/")
    sources = _dir_sources(layers, rel)
    if not sources:
        return False
    _copy_merged(sources, dest)
    _copy_meta(os.lstat(sources[0]), dest)
    return True


def _dir_sources(layers: list[str], rel: str) -> list[str]:
    """The layer directories that make up the merged directory ``rel``, top first."""
    out: list[str] = []
    parts = rel.split("/") if rel else []
    for layer in layers:
        hidden_below = False
        for i in range(1, len(parts)):
            anc = os.path.join(layer, *parts[:i])
            if not os.path.lexists(anc):
                break
            if not os.path.isdir(anc) or os.path.islink(anc):
                return out                    # a file or a whiteout hides what is below
            hidden_below = hidden_below or opaque(anc)
        p = os.path.join(layer, rel)
        if os.path.lexists(p):
            if not os.path.isdir(p) or os.path.islink(p):
                return out                    # a file, a link or a whiteout
            out.append(p)
            if opaque(p):
                return out
        if hidden_below:
            return out
    return out


def _merged_entries(sources: list[str]) -> dict[str, list[str]]:
    """name -> the paths of that entry, top first (one for a non-directory, the stack of
    directories for a directory)."""
    seen: dict[str, list[str]] = {}
    done: set[str] = set()        # whited out, or a non-directory shadowing lower ones
    for src in sources:
        for name in sorted(os.listdir(src)):
            if name.startswith(WHITEOUT_PREFIX):
                if name != WHITEOUT_PREFIX + WHITEOUT_PREFIX + ".opq":
                    done.add(name[len(WHITEOUT_PREFIX):])
                continue
            if name in done:
                continue
            p = os.path.join(src, name)
            st = os.lstat(p)
            if is_whiteout(st):
                done.add(name)
            elif stat.S_ISDIR(st.st_mode):
                seen.setdefault(name, []).append(p)
                if opaque(p):
                    done.add(name)
            elif name not in seen:
                seen[name] = [p]
                done.add(name)
    return seen


def _copy_merged(sources: list[str], dest: str) -> None:
    for name, paths in _merged_entries(sources).items():
        src, target = paths[0], os.path.join(dest, name)
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(target, 0o700)
            _copy_merged(paths, target)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, target, follow_symlinks=False)
        else:
            os.mknod(target, st.st_mode, st.st_rdev)     # fifos, devices
        _copy_meta(st, target)


def _copy_meta(st: os.stat_result, target: str) -> None:
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a 0:0 character device (a deleted file)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def opaque(path: str) -> bool:
    """An overlay directory that hides what the layers below have at its path."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False

"""Resolving a MiniBox file's ``BASE`` to layers and a runtime config.

Resolvers are tried in order; the first whose ``matches`` says yes resolves the ref:

* ``scratch``                      no layers, empty config;
* ``*.tar``, ``*.tar.gz``/``*.tgz``, ``*.tar.zst``
                                   a rootfs archive inside the build context, imported as one
                                   layer and remembered by the archive's sha256;
* a local image in ``index.json``  its layers and config (built, loaded or pulled earlier).

* a registry reference           pulled (``alpine``, ``ghcr.io/u/r:tag``, ``host:5000/r@sha256:…``)
                                   unless the store has it already; ``pull="always"`` pulls
                                   even then, ``pull="never"`` never contacts a registry.

``BaseImage.digest`` identifies the base's *content*, for cache keys: the
archive's sha256, the image's manifest digest, or ``scratch``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from minibox.errors import NotFound, UserError
from minibox.store import LayerInfo, Store, normalize_name
from minibox.store.compress import open_decompressed, sniff
from minibox.atomic import write_file
from minibox.store.oci import LAYER_MEDIA_TYPES, digest_hex

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class BaseImage:
    ref: str
    digest: str                                        # content identity for cache keys
    layers: list[LayerInfo] = field(default_factory=list)   # bottom -> top
    config: dict = field(default_factory=dict)        # the OCI config's "config" section
    history: list[dict] = field(default_factory=list)  # the base's history, to extend
    platform: str | None = None    # an image's OS/ARCH[/VARIANT]; None: a rootfs or scratch

    def to_dict(self) -> dict:
        return {"ref": self.ref, "digest": self.digest,
                "layers": [layer.to_dict() for layer in self.layers],
                "config": self.config, "history": self.history, "platform": self.platform}

    @classmethod
    def from_dict(cls, data: dict) -> "BaseImage":
        return cls(ref=data["ref"], digest=data["digest"],
                   layers=[LayerInfo.from_dict(d) for d in data.get("layers", [])],
                   config=dict(data.get("config") or {}),
                   history=list(data.get("history") or []),
                   platform=data.get("platform"))


class BaseResolver(Protocol):
    def matches(self, ref: str, store: Store) -> bool: ...

    def resolve(self, store: Store, ref: str, context_dir: Path | None) -> BaseImage: ...


class ScratchResolver:
    def matches(self, ref: str, store: Store) -> bool:
        return ref == "scratch"

    def resolve(self, store: Store, ref: str, context_dir: Path | None) -> BaseImage:
        return BaseImage(ref=ref, digest="scratch")


class ArchiveResolver:
    """A rootfs tarball in the build context, imported once per distinct content."""

    def matches(self, ref: str, store: Store) -> bool:
        return ref.lower().endswith(ARCHIVE_SUFFIXES)

    def resolve(self, store: Store, ref: str, context_dir: Path | None) -> BaseImage:
        path = _archive_path(ref, context_dir)
        digest = _sha256_file(path)
        layer = _cached_import(store, digest) or _import_archive(store, path, digest)
        return BaseImage(ref=ref, digest=digest, layers=[layer],
                         config={"Env": [DEFAULT_PATH]},
                         history=[{"created_by": f"BASE {ref}",
                                   "comment": f"rootfs archive {digest}"}])


class LocalImageResolver:
    """An image tagged in the store (or named by its manifest digest); given a
    ``platform``, only one of that platform (or of none said)."""

    def __init__(self, platform: str | None = None):
        self.platform = platform

    def matches(self, ref: str, store: Store) -> bool:
        try:
            image = store.resolve(ref)
        except (NotFound, UserError):
            return False
        # of another platform: a registry may have the one asked for; else it is taken
        # (and the build refuses it, saying why)
        return _fits(image.platform, self.platform) or not RegistryResolver().matches(ref, store)

    def resolve(self, store: Store, ref: str, context_dir: Path | None) -> BaseImage:
        image = store.resolve(ref)
        return BaseImage(ref=image.name or ref, digest=image.digest,
                         layers=image.layer_infos(), config=image.runtime_config,
                         history=image.history, platform=image.platform)


class RegistryResolver:
    """An image in a registry (or a mirror of it), pulled into the store when needed: for
    ``platform`` (a build's ``--platform``), else this machine's.  A local copy of another
    platform than the one asked for is pulled again for it."""

    def __init__(self, always: bool = False, progress=None, platform: str | None = None):
        self.always = always
        self.progress = progress
        self.platform = platform

    def matches(self, ref: str, store: Store) -> bool:
        from minibox.registry.reference import parse
        try:
            parse(ref)
        except UserError:
            return False
        return True

    def resolve(self, store: Store, ref: str, context_dir: Path | None) -> BaseImage:
        from minibox.errors import MiniBoxError
        from minibox.registry.config import RegistryConfig
        from minibox.registry.pull import pull
        from minibox.registry.reference import parse
        from minibox.store.manifests import parse_platform

        parsed = parse(ref)
        local = parsed.local_tag or f"{parsed.familiar_repository}@{parsed.digest}"
        if parsed.digest and parsed.tag:
            local = f"{parsed.familiar_repository}@{parsed.digest}"
        have = None
        if not self.always and LocalImageResolver().matches(local, store):
            have = LocalImageResolver().resolve(store, local, context_dir)
            if _fits(have.platform, self.platform):
                return have
        want = parse_platform(self.platform)          # None: this machine's
        try:
            pulled = pull(store, parsed, RegistryConfig.from_env(), want,
                          progress=self.progress)
        except MiniBoxError as e:
            if have is None:
                raise
            raise UserError(f"base image '{ref}' is {have.platform}, but the build asks for "
                            f"--platform {want}",
                            hint=f"use a base image for {want}, or drop --platform (pulling "
                                 f"{ref} for {want} failed: {e.message})") from None
        return LocalImageResolver().resolve(store, pulled.name or f"x@{pulled.digest}",
                                            context_dir)


def _fits(have: str | None, want: str | None) -> bool:
    """An image of platform ``have`` serves a build for ``want`` (None: any, or unknown)."""
    return not have or not want or have.strip().lower() == want.strip().lower()


PULL_POLICIES = ("missing", "always", "never")
DEFAULT_RESOLVERS: tuple[BaseResolver, ...] = (ScratchResolver(), ArchiveResolver(),
                                               LocalImageResolver(), RegistryResolver())


def resolvers_for(pull: str = "missing", progress=None,
                  platform: str | None = None) -> tuple[BaseResolver, ...]:
    """The resolvers for a ``--pull`` policy and a build's ``--platform`` (None: the
    daemon's): a local image of another platform is left to the registry, which pulls the
    one asked for (with ``--pull never`` it is taken, and the build refuses it)."""
    if pull not in PULL_POLICIES:
        raise UserError(f"invalid pull policy '{pull}'",
                        hint="use one of: " + ", ".join(PULL_POLICIES))
    head = (ScratchResolver(), ArchiveResolver())
    if pull == "never":
        return head + (LocalImageResolver(),)
    if pull == "always":
        return head + (RegistryResolver(always=True, progress=progress, platform=platform),)
    return head + (LocalImageResolver(platform), RegistryResolver(progress=progress,
                                                                   platform=platform))


def resolve_base(store: Store, ref: str, context_dir: Path | None,
                 resolvers: tuple[BaseResolver, ...] = DEFAULT_RESOLVERS) -> BaseImage:
    """Resolve ``ref`` with the first matching resolver; every layer's dir is unpacked."""
    ref = (ref or "").strip()
    if not ref:
        raise UserError("BASE needs an image", hint="e.g. BASE scratch, BASE ./rootfs.tar.gz "
                                                    "or BASE myimage:1.0")
    for resolver in resolvers:
        if resolver.matches(ref, store):
            base = resolver.resolve(store, ref, context_dir)
            layers = [_with_dir(layer, store.ensure_layer_dir(layer)) for layer in base.layers]
            return BaseImage(base.ref, base.digest, layers, base.config, base.history,
                             base.platform)
    raise NotFound(f"base image '{ref}' not found",
                   hint=_not_found_hint(ref))


def _not_found_hint(ref: str) -> str:
    try:
        normalize_name(ref)
    except UserError:
        return ("BASE takes scratch, a local image name, or a .tar/.tar.gz/.tar.zst rootfs "
                "archive inside the build context")
    return (f"no local image is tagged {ref!r} (see `minibox images`), and --pull never "
            f"forbids pulling it: pull, build or load it first")


def _with_dir(layer: LayerInfo, path: Path) -> LayerInfo:
    return LayerInfo(layer.diff_id, layer.digest, layer.size, layer.media_type, layer.empty,
                     dir=path)


def _archive_path(ref: str, context_dir: Path | None) -> Path:
    if context_dir is None:
        raise UserError(f"base archive '{ref}' needs a build context to be found in")
    context = Path(context_dir).resolve()
    candidate = context / ref
    path = candidate.resolve()
    if path != context and context not in path.parents:
        raise UserError(f"base archive '{ref}' is outside the build context {context}",
                        hint="copy the archive into the build context and name it relative "
                             "to it, e.g. BASE ./rootfs.tar.gz")
    if not path.is_file():
        raise UserError(f"base archive '{ref}' not found: looked for {candidate}",
                        hint="paths in BASE are relative to the build context")
    return path


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _record_path(store: Store, digest: str) -> Path:
    return store.bases_dir / f"{digest_hex(digest)}.json"


def _cached_import(store: Store, digest: str) -> LayerInfo | None:
    """The layer an archive with this digest was imported as, if its blob is still here."""
    try:
        layer = LayerInfo.from_dict(json.loads(_record_path(store, digest).read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UserError):
        return None                                   # a damaged record: import again
    return layer if store.has_blob(layer.digest) else None


def _import_archive(store: Store, path: Path, digest: str) -> LayerInfo:
    """Store the archive as a layer blob and unpack it.  gzip and plain tars are stored as
    they are; zstd archives are stored decompressed, because common OCI tools (umoci 0.4)
    cannot read zstd layers and the data root must stay readable by them."""
    with open(path, "rb") as f:
        kind = sniff(f.read(8))
        f.seek(0)
        if kind == "zstd":
            raw, _ = open_decompressed(f)
            with store.open_blob_writer(LAYER_MEDIA_TYPES["none"]) as blob:
                while chunk := raw.read(_HASH_CHUNK):
                    blob.write(chunk)
        else:
            with store.open_blob_writer(LAYER_MEDIA_TYPES[kind],
                                        expected_digest=digest) as blob:
                while chunk := f.read(_HASH_CHUNK):
                    blob.write(chunk)
    layer = store.import_layer(blob.descriptor)
    record = json.dumps(layer.to_dict() | {"dir": None}, sort_keys=True).encode()
    write_file(_record_path(store, digest), record, tmp_dir=store.layout.tmp)
    return layer

"""Images as the OCI spec shapes them: config blob + manifest blob, read back as ``Image``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from minibox.errors import StoreError
from minibox.store.blobs import BlobStore
from minibox.store.layerinfo import LayerInfo
from minibox.store.manifests import Platform, host_platform, parse_platform
from minibox.store.oci import (INDEX_TYPES, MANIFEST_TYPES, MEDIA_CONFIG, MEDIA_MANIFEST,
                               Descriptor, host_architecture, rfc3339)


@dataclass(frozen=True)
class Image:
    """A resolved image: its manifest and config, layers bottom -> top."""

    name: str | None
    descriptor: Descriptor                 # the manifest's descriptor
    manifest: dict
    config: dict                           # the whole OCI image config
    layers: list[Descriptor] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def runtime_config(self) -> dict:
        """The config's ``config`` section (Env, Cmd, Entrypoint, WorkingDir, User ...)."""
        return dict(self.config.get("config") or {})

    @property
    def history(self) -> list[dict]:
        return list(self.config.get("history") or [])

    @property
    def platform(self) -> str | None:
        """``os/architecture[/variant]`` as its config says (None when it names no
        architecture)."""
        return platform_of(self.config)

    def layer_infos(self) -> list[LayerInfo]:
        return [LayerInfo.from_descriptor(d, diff_id)
                for d, diff_id in zip(self.layers, self.diff_ids)]


@dataclass(frozen=True)
class ImageSummary:
    name: str
    digest: str            # manifest digest
    size: int              # manifest + config + compressed layers, in bytes
    created: str | None    # RFC 3339, from the config


def platform_of(config: dict) -> str | None:
    """``os/architecture[/variant]`` of an image config (None when it names no
    architecture)."""
    parts = [config.get("os") or "linux", config.get("architecture"), config.get("variant")]
    return "/".join(p for p in parts if p) if parts[1] else None


def image_platform(platform: str | Platform | None) -> Platform:
    """The platform an image is labelled with: the one given (a build's ``--platform``),
    else this machine's."""
    if platform is None:
        return host_platform()
    return platform if isinstance(platform, Platform) else parse_platform(platform)


def platform_fields(platform: Platform) -> dict:
    """An image config's (and an index entry's) architecture, os and variant."""
    out = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        out["variant"] = platform.variant
    return out


def build_config(section: dict, layers: list[LayerInfo], *, created: str | datetime | None,
                 history: list[dict] | None, platform: str | Platform | None = None) -> dict:
    """The OCI image config for ``layers`` with runtime ``section``, labelled with
    ``platform`` (default this machine's).  Deterministic."""
    stamp = created if isinstance(created, str) else rfc3339(created)
    if history is None:
        history = [{"created": stamp, "created_by": "minibox"} for _ in layers]
    if sum(1 for h in history if not h.get("empty_layer")) != len(layers):
        raise ValueError("history must have one non-empty_layer entry per layer")
    return {
        "created": stamp,
        **platform_fields(image_platform(platform)),
        "config": {k: v for k, v in section.items() if v is not None},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": history,
    }


def build_manifest(config: Descriptor, layers: list[LayerInfo]) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [layer.descriptor.to_oci() for layer in layers],
    }


def load_image(blobs: BlobStore, descriptor: Descriptor, name: str | None) -> Image:
    """Read the manifest (choosing this platform from an index) and config behind ``descriptor``."""
    if descriptor.media_type in INDEX_TYPES:
        descriptor = _pick_platform(blobs, descriptor)
    manifest = blobs.read_json(descriptor.digest)
    if manifest.get("schemaVersion") != 2 or "config" not in manifest:
        raise StoreError(f"manifest {descriptor.digest} is not an OCI/Docker v2 image manifest")
    media_type = manifest.get("mediaType") or descriptor.media_type
    if media_type and media_type not in MANIFEST_TYPES:
        raise StoreError(f"manifest {descriptor.digest} has unsupported type {media_type}")
    try:
        config_desc = Descriptor.from_oci(manifest["config"])
        layers = [Descriptor.from_oci(d) for d in manifest.get("layers") or []]
    except (KeyError, TypeError, ValueError) as e:
        raise StoreError(f"manifest {descriptor.digest} is malformed: {e}") from None
    config = blobs.read_json(config_desc.digest)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(layers):
        raise StoreError(f"image {name or descriptor.digest}: config lists {len(diff_ids)} "
                         f"diff_ids for {len(layers)} layers")
    return Image(name=name, descriptor=descriptor, manifest=manifest, config=config,
                 layers=layers, diff_ids=diff_ids)


def summarize(blobs: BlobStore, name: str, descriptor: Descriptor) -> ImageSummary:
    image = load_image(blobs, descriptor, name)
    size = (image.descriptor.size + int(image.manifest["config"].get("size", 0))
            + sum(d.size for d in image.layers))
    return ImageSummary(name=name, digest=image.digest, size=size,
                        created=image.config.get("created"))


def _pick_platform(blobs: BlobStore, descriptor: Descriptor) -> Descriptor:
    index = blobs.read_json(descriptor.digest)
    arch = host_architecture()
    candidates = [Descriptor.from_oci(m) for m in index.get("manifests") or []]
    for cand in candidates:
        plat = cand.platform or {}
        if plat.get("os", "linux") == "linux" and plat.get("architecture") == arch:
            return cand
    raise StoreError(f"image index {descriptor.digest} has no manifest for linux/{arch}")

"""Checking manifests and indexes that come from outside (a registry, an archive) before any
of their blobs is trusted: JSON shape, media types, digests; and choosing a platform."""

from __future__ import annotations

import json
from dataclasses import dataclass

from minibox.errors import UserError
from minibox.store.oci import (INDEX_TYPES, MANIFEST_TYPES, MEDIA_CONFIG, MEDIA_LAYER,
                               MEDIA_LAYER_GZIP, MEDIA_LAYER_ZSTD, DOCKER_LAYER_GZIP,
                               Descriptor, host_architecture)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
CONFIG_TYPES = frozenset({MEDIA_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset({MEDIA_LAYER, MEDIA_LAYER_GZIP, MEDIA_LAYER_ZSTD, DOCKER_LAYER_GZIP,
                         DOCKER_LAYER})
MAX_CONFIG_BYTES = 16 << 20


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    return Platform("linux", host_architecture())


def parse_platform(text: str | None) -> Platform:
    if not text:
        return host_platform()
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UserError(f"invalid platform '{text}'", hint="use OS/ARCH[/VARIANT], e.g. "
                                                           "linux/arm64 or linux/arm/v7")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def parse_json(body: bytes, what: str) -> dict:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise UserError(f"{what} is not a JSON object")
    return doc


def kind_of(doc: dict, header_type: str, what: str) -> str:
    """``manifest`` or ``index``; UserError for anything else (schema 1, unknown types)."""
    media = doc.get("mediaType") or header_type
    if doc.get("schemaVersion") != 2:
        raise UserError(f"{what} has schemaVersion {doc.get('schemaVersion')!r}; only "
                        f"schema 2 (OCI or Docker v2) manifests are supported")
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        return "index"
    if media in MANIFEST_TYPES or (not media and "config" in doc):
        return "manifest"
    raise UserError(f"{what} has an unsupported media type '{str(media)[:100]}'",
                    hint="supported: OCI image manifests and indexes, Docker v2 manifests "
                         "and manifest lists")


def manifest_parts(doc: dict, what: str) -> tuple[Descriptor, list[Descriptor]]:
    """The config and layer descriptors of an image manifest, with their types checked."""
    try:
        config = Descriptor.from_oci(doc["config"])
        layers = [Descriptor.from_oci(d) for d in doc.get("layers") or []]
    except (KeyError, TypeError, ValueError, AttributeError, UserError) as e:
        raise UserError(f"{what} is malformed ({type(e).__name__}: {str(e)[:100]})") from None
    if config.media_type not in CONFIG_TYPES:
        raise UserError(f"{what}: unsupported config media type '{config.media_type[:100]}'",
                        hint="only container image configs can be pulled")
    if config.size > MAX_CONFIG_BYTES or config.size < 0:
        raise UserError(f"{what}: config of {config.size} bytes is out of bounds")
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise UserError(f"{what}: unsupported layer media type '{layer.media_type[:100]}'",
                            hint="supported layers: tar, tar+gzip, tar+zstd (OCI or Docker); "
                                 "foreign and non-distributable layers are not")
        if layer.size < 0:
            raise UserError(f"{what}: a layer has a negative size")
    return config, layers


def pick_platform(index: dict, want: Platform, what: str) -> Descriptor:
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise UserError(f"{what} is malformed: no manifest list")
    found = []
    for entry in entries:
        try:
            desc = Descriptor.from_oci(entry)
        except (KeyError, TypeError, ValueError, AttributeError, UserError):
            raise UserError(f"{what} is malformed: a bad manifest entry") from None
        plat = desc.platform if isinstance(desc.platform, dict) else {}
        found.append(f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
                     + (f"/{plat['variant']}" if plat.get("variant") else ""))
        if plat.get("os") == want.os and plat.get("architecture") == want.architecture and \
                (want.variant is None or plat.get("variant") in (want.variant, None)):
            return desc
    raise UserError(f"{what} has no image for {want}",
                    hint="it has: " + (", ".join(sorted(set(found))[:12]) or "nothing") +
                         "; choose one with --platform")

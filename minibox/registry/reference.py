"""Registry image references, with Docker Hub's defaults.

``alpine`` is ``docker.io/library/alpine:latest``, served by ``registry-1.docker.io``;
``user/app`` is ``docker.io/user/app``; the first component is a registry only when it has a
``.`` or a ``:`` or is ``localhost`` (``ghcr.io/user/repo:tag``, ``127.0.0.1:5000/ns/app``).
A reference may carry a tag, a digest (``@sha256:…``) or both; with neither it means
``:latest``.

``local_name`` is the name the image gets in the store: the familiar short form Docker shows
(``alpine:latest``, ``user/app:1``, ``ghcr.io/user/repo:tag``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minibox.errors import UserError
from minibox.store.oci import is_digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
                      r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
                      r"(?::[0-9]{1,5})?$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Reference:
    registry: str             # docker.io, ghcr.io, 127.0.0.1:5000 (as written; Hub normalized)
    repository: str           # library/alpine, user/repo
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the distribution API."""
        return DOCKER_HUB_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def familiar_repository(self) -> str:
        if self.is_docker_hub:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def local_name(self) -> str:
        """``repo:tag`` as the store names it (``alpine:latest``); ``repo:latest`` for a
        reference that names only a digest is *not* implied: see ``local_tag``."""
        return f"{self.familiar_repository}:{self.tag or 'latest'}"

    @property
    def local_tag(self) -> str | None:
        """The store tag a pull of this reference sets: none for a digest-only reference."""
        if self.digest and not self.tag:
            return None
        return self.local_name

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def looks_like_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" \
        or component.startswith("[")


def parse(text: str) -> Reference:
    """Parse an image reference; UserError (naming it) when it is not one."""
    raw = (text or "").strip()
    if not raw:
        raise UserError("an image reference is required",
                        hint="e.g. alpine:3.19, ghcr.io/user/repo:tag or host:5000/app@sha256:…")
    name, digest = raw, None
    if "@" in raw:
        name, _, digest = raw.partition("@")
        if not is_digest(digest):
            raise _bad(raw, "the part after '@' must be sha256:<64 lowercase hex digits>")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG_RE.match(tag):
            raise _bad(raw, "a tag is up to 128 letters, digits, '_', '.' and '-'")
    first, sep, rest = name.partition("/")
    if sep and looks_like_registry(first):
        registry, path = first, rest
        if not _HOST_RE.match(registry):
            raise _bad(raw, f"'{registry}' is not a valid registry host[:port]")
    else:
        registry, path = DOCKER_HUB, name
    if registry.lower() in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if not _PATH_RE.match(path) or len(path) > 255:
        hint = "repository names are lowercase letters, digits and . _ - separated by '/'"
        if path != path.lower():
            hint = f"repository names must be lowercase: try '{raw.lower()}'"
        raise UserError(f"invalid image reference '{raw}'", hint=hint)
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def _bad(raw: str, why: str) -> UserError:
    return UserError(f"invalid image reference '{raw}': {why}")

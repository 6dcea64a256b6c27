"""Where registries are reached: mirrors, hosts allowed over plain HTTP, the credentials file.

Read from the environment of the process that talks to registries (miniboxd):

* ``MINIBOX_REGISTRY_MIRRORS``: ``REGISTRY=URL`` entries, comma-separated, tried in order
  before the registry itself (``docker.io=http://127.0.0.1:5000``);
* ``MINIBOX_INSECURE_REGISTRIES``: ``host[:port]`` entries that may be reached over plain
  HTTP (loopback hosts always may);
* ``MINIBOX_AUTH_FILE``: the credentials file ``minibox login`` writes (default
  ``$XDG_CONFIG_HOME/minibox/auth.json``, i.e. ``~/.config/minibox/auth.json``;
  ``authfile.py``);
* ``MINIBOX_REGISTRY_ALLOW``: when set, the only hosts contacted (``host[:port]`` entries;
  ``loopback`` stands for every loopback host).  The test suite sets ``loopback`` so that no
  test can reach Docker Hub.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from minibox.errors import UserError
from minibox.registry.authfile import auth_file_path


@dataclass(frozen=True)
class Endpoint:
    """One place to send distribution API requests for a registry."""

    url: str          # scheme://host[:port], no trailing slash
    host: str         # host[:port]: the key for credentials
    mirror: bool = False

    @property
    def netloc(self) -> str:
        """The host[:port] requests go to."""
        return self.url.split("://", 1)[1].split("/", 1)[0]


@dataclass
class RegistryConfig:
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    insecure: set[str] = field(default_factory=set)
    auth_file: Path = field(default_factory=lambda: Path(auth_file_path()))
    allow: set[str] | None = None

    @classmethod
    def from_env(cls, env=None, *, insecure: tuple[str, ...] = ()) -> "RegistryConfig":
        env = os.environ if env is None else env
        mirrors: dict[str, list[str]] = {}
        for entry in _split(env.get("MINIBOX_REGISTRY_MIRRORS")):
            registry, sep, url = entry.partition("=")
            url = url.strip().rstrip("/")
            if not sep or not registry.strip() or not url.startswith(("http://", "https://")):
                raise UserError(f"invalid MINIBOX_REGISTRY_MIRRORS entry '{entry}'",
                                hint="use REGISTRY=URL, e.g. docker.io=https://mirror.local")
            mirrors.setdefault(registry.strip(), []).append(url)
        hosts = {h for h in _split(env.get("MINIBOX_INSECURE_REGISTRIES"))} | set(insecure)
        allow = env.get("MINIBOX_REGISTRY_ALLOW")
        return cls(mirrors=mirrors, insecure=hosts,
                   auth_file=Path(auth_file_path(env)),
                   allow=set(_split(allow)) if allow is not None else None)

    def check_allowed(self, host: str, what: str) -> None:
        if self.allow is None or host in self.allow or _hostname(host) in self.allow or \
                ("loopback" in self.allow and is_loopback(host)):
            return
        raise UserError(f"{what}: registry host {host} is not in MINIBOX_REGISTRY_ALLOW "
                        f"({', '.join(sorted(self.allow)) or 'empty'})",
                        hint="add it to MINIBOX_REGISTRY_ALLOW in the daemon's environment")

    def allows_http(self, host: str) -> bool:
        return host in self.insecure or _hostname(host) in self.insecure \
            or is_loopback(host)

    def endpoints(self, registry: str, api_host: str) -> list[Endpoint]:
        """The mirrors configured for ``registry``, then the registry itself."""
        out = []
        for url in self.mirrors.get(registry, []):
            host = url.split("://", 1)[1].split("/", 1)[0]
            if url.startswith("http://") and not self.allows_http(host):
                raise UserError(f"mirror {url} is plain HTTP and {host} is not loopback",
                                hint=f"add {host} to MINIBOX_INSECURE_REGISTRIES, or use "
                                     "https")
            out.append(Endpoint(url, host, mirror=True))
        scheme = "http" if self.allows_http(api_host) else "https"
        out.append(Endpoint(f"{scheme}://{api_host}", registry))
        return out


def is_loopback(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]

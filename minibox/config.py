"""One place for every setting of the daemon and the workers (read from the environment).

The reference engine's variables keep their meaning: MINIBOX_DATA_ROOT, MINIBOX_HTTP_ADDR,
MINIBOX_API_TOKEN, MINIBOX_BUILD_PREFIXES.  New ones: MINIBOX_BROKER_URL (use this Redis
instead of starting a private one), MINIBOX_BUILD_CONCURRENCY, MINIBOX_LAYER_COMPRESSION, and
the networks' names (MINIBOX_BUILD_BRIDGE/_SUBNET, MINIBOX_BRIDGE/_SUBNET,
MINIBOX_NET_CHAIN_PREFIX; see minibox/net).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_ROOT = "/var/lib/minibox"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
DEFAULT_BUILD_PREFIXES = "/home,/tmp,/var/tmp,/var/lib/minibox,/root,/srv,/opt,/usr/local/src"
DEFAULT_BRIDGE, DEFAULT_BRIDGE_SUBNET = "minibox0", "172.19.0.0/24"
DEFAULT_BUILD_BRIDGE, DEFAULT_BUILD_SUBNET = "mbbuild0", "172.19.1.0/24"
DEFAULT_CHAIN_PREFIX = "MINIBOX"


def _default_concurrency() -> int:
    # Build steps mostly wait on I/O: at least 4, at least twice the cores.
    return max(4, 2 * (os.cpu_count() or 1))


def _env(env, name: str, default: str) -> str:
    return (env.get(name) or "").strip() or default


@dataclass
class Settings:
    data_root: Path = field(default_factory=lambda: Path(DEFAULT_DATA_ROOT))
    http_addr: str = DEFAULT_HTTP_ADDR
    api_token: str | None = None
    build_prefixes: list[str] = field(default_factory=list)
    broker_url: str | None = None
    build_concurrency: int = field(default_factory=_default_concurrency)
    layer_compression: str = "none"
    public_url: str | None = None
    bridge: str = DEFAULT_BRIDGE                   # containers' default network
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET
    build_bridge: str = DEFAULT_BUILD_BRIDGE       # build steps' network
    build_subnet: str = DEFAULT_BUILD_SUBNET
    chain_prefix: str = DEFAULT_CHAIN_PREFIX       # MiniBox's own iptables chains

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        root = (env.get("MINIBOX_DATA_ROOT") or "").strip() or DEFAULT_DATA_ROOT
        prefixes = (env.get("MINIBOX_BUILD_PREFIXES") or DEFAULT_BUILD_PREFIXES)
        token = (env.get("MINIBOX_API_TOKEN") or "").strip() or None
        conc = (env.get("MINIBOX_BUILD_CONCURRENCY") or "").strip()
        return cls(
            data_root=Path(root).absolute(),
            http_addr=(env.get("MINIBOX_HTTP_ADDR") or "").strip() or DEFAULT_HTTP_ADDR,
            api_token=token,
            build_prefixes=[p.strip() for p in prefixes.split(",") if p.strip()],
            broker_url=(env.get("MINIBOX_BROKER_URL") or "").strip() or None,
            build_concurrency=int(conc) if conc.isdigit() and int(conc) > 0
            else _default_concurrency(),
            layer_compression=(env.get("MINIBOX_LAYER_COMPRESSION") or "none").strip(),
            public_url=(env.get("MINIBOX_PUBLIC_URL") or "").strip().rstrip("/") or None,
            bridge=_env(env, "MINIBOX_BRIDGE", DEFAULT_BRIDGE),
            bridge_subnet=_env(env, "MINIBOX_BRIDGE_SUBNET", DEFAULT_BRIDGE_SUBNET),
            build_bridge=_env(env, "MINIBOX_BUILD_BRIDGE", DEFAULT_BUILD_BRIDGE),
            build_subnet=_env(env, "MINIBOX_BUILD_SUBNET", DEFAULT_BUILD_SUBNET),
            chain_prefix=_env(env, "MINIBOX_NET_CHAIN_PREFIX", DEFAULT_CHAIN_PREFIX),
        )

    # --- derived paths -----------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.data_root / "run"

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis.sock"

    @property
    def net_dir(self) -> Path:
        """Network state: IP leases, networks, the iptables rules' sources (minibox/net)."""
        return self.data_root / "net"

    @property
    def contexts_dir(self) -> Path:
        return self.data_root / "contexts"

    @property
    def cache_dir(self) -> Path:
        return self.data_root / "cache"

    def daemon_url(self) -> str:
        """Where build workers on other machines reach this daemon (MINIBOX_PUBLIC_URL, or
        the listen address)."""
        if self.public_url:
            return self.public_url
        if self.http_addr.startswith("unix://"):
            return self.http_addr
        return f"http://{self.http_addr}"

    def effective_broker_url(self) -> str:
        """The broker every process of this farm uses."""
        if self.broker_url:
            return self.broker_url
        return f"redis+socket://{self.redis_socket}"

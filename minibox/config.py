"""One place for every setting of the daemon and the workers (read from the environment).

The reference engine's variables keep their meaning: MINIBOX_DATA_ROOT, MINIBOX_HTTP_ADDR,
MINIBOX_API_TOKEN, MINIBOX_BUILD_PREFIXES.  New ones: MINIBOX_BROKER_URL (use this Redis
instead of starting a private one), MINIBOX_BUILD_CONCURRENCY, MINIBOX_LAYER_COMPRESSION, and
the networks' names (MINIBOX_BUILD_BRIDGE/_SUBNET, MINIBOX_BRIDGE/_SUBNET,
MINIBOX_NET_CHAIN_PREFIX; see minibox/net).  The runtime's: MINIBOX_CGROUP_PARENT (the cgroup
containers are made under), MINIBOX_PYTHON_MONITOR and MINIBOX_NO_ZYGOTE (force the Python
monitor and the Python PID 1 of build RUN steps, and their fork out of the worker: for tests
and measurements).

Each process reads its environment once, here: ``process_settings()`` (the CLI has its own
one place, minibox.cli.endpoint).

The API always needs a credential (DESIGN.md, "Trust boundaries"): MINIBOX_API_TOKEN when
set, else a token the daemon generates once into ``run/api-token`` (0640 root:minibox); a
unix socket ``run/miniboxd.sock`` (0660 root:minibox) beside TCP; TLS with
MINIBOX_TLS_CERT/MINIBOX_TLS_KEY, client certificates with MINIBOX_TLS_CLIENT_CA.  A remote
build worker is a client of the daemon: MINIBOX_API_TOKEN, and for https MINIBOX_TLS_CA
(and MINIBOX_TLS_CLIENT_CERT/MINIBOX_TLS_CLIENT_KEY when the daemon wants certificates).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_DATA_ROOT = "/var/lib/minibox"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
API_GROUP = "minibox"            # who may use the local API (token file, unix socket)
DEFAULT_BUILD_PREFIXES = "/home,/tmp,/var/tmp,/var/lib/minibox,/root,/srv,/opt,/usr/local/src"
DEFAULT_BRIDGE, DEFAULT_BRIDGE_SUBNET = "minibox0", "172.19.0.0/24"
DEFAULT_BUILD_BRIDGE, DEFAULT_BUILD_SUBNET = "mbbuild0", "172.19.1.0/24"
DEFAULT_CHAIN_PREFIX = "MINIBOX"
DEFAULT_CGROUP_PARENT = "minibox"


def _default_concurrency() -> int:
    # Build steps mostly wait on I/O: at least 4, at least twice the cores.
    return max(4, 2 * (os.cpu_count() or 1))


def _env(env, name: str, default: str) -> str:
    return (env.get(name) or "").strip() or default


def _context_limits(env) -> "ContextLimits":
    """MINIBOX_CONTEXT_MAX_SIZE (bytes, or 512m, 8g), _MAX_FILES, _MAX_DEPTH, _MAX_RATIO."""
    from minibox.builder.context import ContextLimits

    base = ContextLimits()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

    def number(name: str, default: int, sized: bool = False) -> int:
        text = (env.get(name) or "").strip().lower().removesuffix("b")
        mult = units.get(text[-1:], 1) if sized and text else 1
        digits = text[:-1] if mult > 1 else text
        return int(digits) * mult if digits.isdigit() and int(digits) > 0 else default

    return ContextLimits(max_bytes=number("MINIBOX_CONTEXT_MAX_SIZE", base.max_bytes, True),
                         max_files=number("MINIBOX_CONTEXT_MAX_FILES", base.max_files),
                         max_depth=number("MINIBOX_CONTEXT_MAX_DEPTH", base.max_depth),
                         max_ratio=number("MINIBOX_CONTEXT_MAX_RATIO", base.max_ratio))


_TLS = ("tls_cert", "tls_key", "tls_client_ca", "tls_ca", "tls_client_cert", "tls_client_key")


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
    context_limits: "ContextLimits" = field(default_factory=lambda: _context_limits({}))
    api_auth: str = "token"                 # "token", or "none" (loopback and sockets only)
    tls_cert: str | None = None             # the daemon's certificate and key (https)
    tls_key: str | None = None
    tls_client_ca: str | None = None        # require client certificates signed by this CA
    tls_ca: str | None = None               # a worker: the CA that signed the daemon's cert
    tls_client_cert: str | None = None      # a worker: its own certificate for the daemon
    tls_client_key: str | None = None
    bridge: str = DEFAULT_BRIDGE                   # containers' default network
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET
    build_bridge: str = DEFAULT_BUILD_BRIDGE       # build steps' network
    build_subnet: str = DEFAULT_BUILD_SUBNET
    chain_prefix: str = DEFAULT_CHAIN_PREFIX       # MiniBox's own iptables chains
    cgroup_parent: str = DEFAULT_CGROUP_PARENT     # containers' cgroups live under it
    python_monitor: bool = False                   # never the compiled monitor
    no_zygote: bool = False                        # Python monitors fork from the worker

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
            context_limits=_context_limits(env),
            api_auth=(env.get("MINIBOX_API_AUTH") or "token").strip().lower(),
            **{f: (env.get(f"MINIBOX_{f.upper()}") or "").strip() or None for f in _TLS},
            bridge=_env(env, "MINIBOX_BRIDGE", DEFAULT_BRIDGE),
            bridge_subnet=_env(env, "MINIBOX_BRIDGE_SUBNET", DEFAULT_BRIDGE_SUBNET),
            build_bridge=_env(env, "MINIBOX_BUILD_BRIDGE", DEFAULT_BUILD_BRIDGE),
            build_subnet=_env(env, "MINIBOX_BUILD_SUBNET", DEFAULT_BUILD_SUBNET),
            chain_prefix=_env(env, "MINIBOX_NET_CHAIN_PREFIX", DEFAULT_CHAIN_PREFIX),
            cgroup_parent=(env.get("MINIBOX_CGROUP_PARENT") or "").strip().strip("/")
            or DEFAULT_CGROUP_PARENT,
            python_monitor=bool(env.get("MINIBOX_PYTHON_MONITOR")),
            no_zygote=bool(env.get("MINIBOX_NO_ZYGOTE")),
        )

    # --- derived paths -----------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.data_root / "run"

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis.sock"

    @property
    def token_file(self) -> Path:
        return self.run_dir / "api-token"

    @property
    def api_socket(self) -> Path:
        return self.run_dir / "miniboxd.sock"

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
        return f"{'https' if self.tls_cert else 'http'}://{self.http_addr}"

    def effective_broker_url(self) -> str:
        """The broker every process of this farm uses."""
        if self.broker_url:
            return self.broker_url
        return f"redis+socket://{self.redis_socket}"


@lru_cache(maxsize=1)
def process_settings() -> Settings:
    """This process's settings, read from its environment once (the first time it is asked)."""
    return Settings.from_env()

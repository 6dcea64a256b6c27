"""One place for every setting of the daemon and the workers (read from the environment).

The reference engine's variables keep their meaning: MINIBOX_DATA_ROOT, MINIBOX_HTTP_ADDR,
MINIBOX_API_TOKEN, MINIBOX_BUILD_PREFIXES.  New ones: MINIBOX_BROKER_URL (use this Redis
instead of starting a private one), MINIBOX_BUILD_CONCURRENCY, MINIBOX_LAYER_COMPRESSION.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_ROOT = "/var/lib/minibox"
DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
DEFAULT_BUILD_PREFIXES = "/home,/tmp,/var/tmp,/var/lib/minibox,/root,/srv,/opt,/usr/local/src"


def _default_concurrency() -> int:
    # Build steps mostly wait on I/O: at least 4, at least twice the cores.
    return max(4, 2 * (os.cpu_count() or 1))


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
        )

    # --- derived paths -----------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.data_root / "run"

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis.sock"

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

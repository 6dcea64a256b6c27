"""The parsed form of a MiniBox file.

The parser (``minibox.mbfile.parser``) produces these; the graph, the planner and the cache
key read them.  Every node remembers the line it came from so later errors can point at it.
Both the DAG format and the legacy linear format parse into the same model: a legacy file is
one block named ``main`` holding its instructions in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    command: str              # shell form, passed to /bin/sh -c verbatim (whitespace kept)
    line: int
    argv: tuple[str, ...] | None = None   # JSON-array (exec) form, when written that way


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]  # one or more; globs allowed for context copies
    dest: str                 # absolute, or relative to the block's WORKDIR at that point
    line: int
    from_block: str | None = None  # COPY FROM=<block>


@dataclass(frozen=True)
class Workdir:
    path: str
    line: int


@dataclass(frozen=True)
class Env:
    items: tuple[tuple[str, str], ...]   # in written order
    line: int


@dataclass(frozen=True)
class User:
    user: str                 # name, uid, name:group, uid:gid
    line: int


@dataclass(frozen=True)
class Pkg:
    packages: tuple[str, ...]  # "name" or "name@version"
    line: int


@dataclass(frozen=True)
class Port:
    port: int
    proto: str                # "tcp" or "udp"
    line: int


@dataclass(frozen=True)
class Volume:
    path: str
    line: int


Instruction = Run | Copy | Workdir | Env | User | Pkg | Port | Volume


@dataclass
class Block:
    name: str
    line: int
    needs: list[str] = field(default_factory=list)     # runtime deps (layers ship)
    bneeds: list[str] = field(default_factory=list)    # build-only deps (incl. COPY FROM=)
    instructions: list = field(default_factory=list)   # list[Instruction], in order
    auto_deps: bool = False
    auto_deps_line: int = 0

    @property
    def deps(self) -> list[str]:
        """NEED then BNEED names, without duplicates, in written order."""
        out: list[str] = []
        for n in self.needs + self.bneeds:
            if n not in out:
                out.append(n)
        return out


@dataclass(frozen=True)
class Healthcheck:
    argv: tuple[str, ...]     # exec form; shell form becomes ("/bin/sh", "-c", text)
    interval: int = 30        # seconds
    timeout: int = 30
    retries: int = 3
    start_period: int = 0
    line: int = 0


@dataclass
class MiniBoxFile:
    path: str
    base: str
    base_line: int
    blocks: list[Block]       # file order
    start: tuple[str, ...] | None = None     # argv; shell form becomes ("/bin/sh", "-c", text)
    start_line: int = 0
    healthcheck: Healthcheck | None = None
    legacy: bool = False

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

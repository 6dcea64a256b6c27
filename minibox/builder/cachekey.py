"""Block cache keys, and why a block missed the cache.

A block's key is a blake3 hash of: the base image digest, its parents' keys (NEED and BNEED,
by name), the state it inherits (ENV, WORKDIR, USER …), its normalized instructions (line
numbers left out, so a new comment does not rebuild anything), the content of every COPY
source (path, mode, owner, link target, bytes — never mtime) and the build's timestamp
(SOURCE_DATE_EPOCH) when it has one, since the layer's mtimes are clamped to it, and the
platform its workers run (``--platform``): the same rootfs archive built for linux/arm64 is
another layer than for linux/amd64.

Each build of a tag records the components per block, so the next miss can say which input
changed: "COPY sources at line 7 changed", "parent block 'runtime' changed", ….
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from minibox import atomic

KEY_VERSION = 1


def _h(obj) -> str:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return blake3.blake3(data.encode()).hexdigest()


@dataclass
class KeyInputs:
    base: str
    parents: dict[str, str]                      # name -> key
    inherited: dict
    instructions: list[dict]
    copy_hashes: dict[str, str] = field(default_factory=dict)   # "index" -> content hash
    lines: list[int] = field(default_factory=list)              # line of each instruction
    timestamp: int | None = None     # SOURCE_DATE_EPOCH: the layer's mtimes are clamped to it
    platform: str | None = None      # the build's OS/ARCH[/VARIANT] (builder.platforms)

    def components(self) -> dict:
        c = {"base": self.base, "parents": self.parents,
             "inherited": _h(self.inherited),
             "instructions": [_h(i) for i in self.instructions],
             "copy": self.copy_hashes, "lines": self.lines}
        if self.timestamp is not None:             # keys without one stay as they were
            c["timestamp"] = self.timestamp
        if self.platform is not None:
            c["platform"] = self.platform
        return c

    def key(self) -> str:
        c = self.components()
        c.pop("lines")
        c["copy"] = [self.copy_hashes[k] for k in sorted(self.copy_hashes, key=int)]
        return _h({"v": KEY_VERSION, **c})


def explain_miss(previous: dict | None, now: dict, instr_text: list[str]) -> str:
    """A short reason why ``now`` differs from the components of the last build."""
    if previous is None:
        return "no earlier build of this block"
    if previous.get("base") != now["base"]:
        return "the base image changed"
    prev_parents, parents = previous.get("parents", {}), now["parents"]
    for name, key in parents.items():
        if prev_parents.get(name) != key:
            return f"parent block '{name}' changed" if name in prev_parents \
                else f"new dependency on block '{name}'"
    if set(prev_parents) - set(parents):
        return "a dependency was removed"
    if previous.get("platform") != now.get("platform"):
        return "the platform (--platform) changed"
    if previous.get("inherited") != now["inherited"]:
        return "the inherited ENV/WORKDIR/USER changed"
    if previous.get("timestamp") != now.get("timestamp"):
        return "the timestamp (--timestamp, SOURCE_DATE_EPOCH) changed"
    reason = _instruction_change(previous, now, instr_text)
    if reason:
        return reason
    prev_copy, lines = previous.get("copy", {}), now.get("lines", [])
    for idx in sorted(now["copy"], key=int):
        if prev_copy.get(idx) != now["copy"][idx]:
            line = lines[int(idx)] if int(idx) < len(lines) else "?"
            return f"COPY sources at line {line} changed"
    return "the layer is no longer in the store"


def _instruction_change(previous: dict, now: dict, texts: list[str]) -> str | None:
    prev, cur = previous.get("instructions", []), now["instructions"]
    lines = now.get("lines", [])
    for i, h in enumerate(cur):
        if i >= len(prev):
            return f"instruction added at line {lines[i]}: {texts[i]}"
        if prev[i] != h:
            return f"instruction at line {lines[i]} changed: {texts[i]}"
    if len(prev) > len(cur):
        return "an instruction was removed"
    return None


class LastBuilds:
    """Per (image tag, block) components of the last build, for miss explanations.

    One file per tag (read at the first ``get``, written once by ``save`` at the build's
    end), not one per block: a 200-block rebuild writes one small file, not 200."""

    def __init__(self, cache_dir: Path):
        self.dir = Path(cache_dir) / "last"
        self._tags: dict[str, dict] = {}
        self._changed: set[str] = set()

    def _path(self, tag: str) -> Path:
        return self.dir / ("tag-" + blake3.blake3(tag.encode()).hexdigest()[:32] + ".json")

    def _blocks(self, tag: str) -> dict:
        if tag not in self._tags:
            try:
                data = json.loads(self._path(tag).read_text())
            except (OSError, ValueError):
                data = None
            self._tags[tag] = data if isinstance(data, dict) else {}
        return self._tags[tag]

    def get(self, tag: str, block: str) -> dict | None:
        return self._blocks(tag).get(block)

    def put(self, tag: str, block: str, components: dict) -> None:
        self._blocks(tag)[block] = components
        self._changed.add(tag)

    def save(self) -> None:
        """Write the tags that changed (the blocks not built this time keep what the
        earlier builds recorded); lost by a crash: a miss explained less well, no more."""
        for tag in sorted(self._changed):
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic.write_json(self._path(tag), self._blocks(tag), durable=False)
        self._changed.clear()

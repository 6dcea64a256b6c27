"""The block graph of a parsed MiniBox file.

Edges: ``NEED`` (runtime: the dependency's layers ship under the dependent's) and ``BNEED``
(build order only; ``COPY FROM=`` adds one).  ``waves`` schedules builds over both kinds;
``final_blocks`` picks the layers of the image, which follow NEED edges only.

Every function expects a file the parser accepted (references resolve, no cycles); given a
hand-made graph that is broken they raise ``UserError`` rather than loop or crash.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Callable, Iterable

from minibox.errors import UserError
from minibox.mbfile.model import Block, MiniBoxFile

EdgeFn = Callable[[Block], Iterable[str]]


def _needs(b: Block) -> list[str]:
    return b.needs


def _deps(b: Block) -> list[str]:
    return b.deps


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the closest choice, or None."""
    if len(word) > 64:
        return None
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def find_cycle(names: list[str], edges: Callable[[str], Iterable[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, c, a]``, or None.  Names are visited in the given
    order; edges to names not in ``names`` are ignored.  Iterative, so deep graphs are fine."""
    known = set(names)
    state: dict[str, int] = {}          # 1 = on the current path, 2 = finished
    for root in names:
        if root in state:
            continue
        path = [root]
        stack = [iter(list(edges(root)))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt in known and state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt in known and nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(list(edges(nxt))))
    return None


def get_block(mb: MiniBoxFile, name: str) -> Block:
    """The block called ``name``; an unknown name is a UserError with a did-you-mean."""
    for b in mb.blocks:
        if b.name == name:
            return b
    names = [b.name for b in mb.blocks]
    hint = did_you_mean(name, names) or (
        "blocks in this file: " + ", ".join(names) if names else "this file has no blocks")
    raise UserError(f"no block named '{name}' in {mb.path}", hint=hint)


def resolve_target(mb: MiniBoxFile, target: str | None = None) -> Block | None:
    """The target block: ``target`` by name, else the last block (None if there is none)."""
    if target is not None:
        return get_block(mb, target)
    return mb.blocks[-1] if mb.blocks else None


def _closure(mb: MiniBoxFile, name: str, edges: EdgeFn) -> set[str]:
    by_name = {b.name: b for b in mb.blocks}
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        block = by_name.get(current) or get_block(mb, current)
        for dep in edges(block):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    seen.discard(name)
    return seen


def _ordered(mb: MiniBoxFile, names: set[str], edges: EdgeFn) -> list[Block]:
    """``names`` in dependency-first order; ties go to the block earlier in the file."""
    index = {b.name: i for i, b in enumerate(mb.blocks)}
    chosen = [b for b in mb.blocks if b.name in names]
    waiting = {b.name: {d for d in edges(b) if d in names} for b in chosen}
    users: dict[str, list[str]] = {n: [] for n in waiting}
    for n, deps in waiting.items():
        for d in deps:
            users[d].append(n)
    ready = [index[n] for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    out: list[Block] = []
    while ready:
        b = mb.blocks[heapq.heappop(ready)]
        out.append(b)
        for u in users[b.name]:
            waiting[u].discard(b.name)
            if not waiting[u]:
                heapq.heappush(ready, index[u])
    if len(out) != len(chosen):
        raise UserError(f"circular block dependencies in {mb.path}")
    return out


def need_closure(mb: MiniBoxFile, name: str) -> list[str]:
    """Every block ``name`` transitively NEEDs (not itself), dependencies first."""
    return [b.name for b in _ordered(mb, _closure(mb, name, _needs), _needs)]


def dep_closure(mb: MiniBoxFile, name: str) -> list[str]:
    """Every block ``name`` transitively NEEDs or BNEEDs (not itself), dependencies first."""
    return [b.name for b in _ordered(mb, _closure(mb, name, _deps), _deps)]


def final_blocks(mb: MiniBoxFile, target: str | None = None) -> list[Block]:
    """The blocks whose layers make the image, bottom layer first: the target (default: the
    last block) and its transitive NEED closure.  BNEED-only blocks stay out."""
    top = resolve_target(mb, target)
    if top is None:
        return []
    return _ordered(mb, _closure(mb, top.name, _needs) | {top.name}, _needs)


def waves(mb: MiniBoxFile, target: str | None = None) -> list[list[Block]]:
    """Build waves over NEED and BNEED edges, file order inside a wave: a block runs in the
    wave after the last of its dependencies.  With ``target``, only the target and
    everything it transitively depends on."""
    if target is None:
        chosen = list(mb.blocks)
    else:
        keep = _closure(mb, get_block(mb, target).name, _deps) | {target}
        chosen = [b for b in mb.blocks if b.name in keep]
    index = {b.name: i for i, b in enumerate(chosen)}
    waiting = {b.name: set(b.deps) for b in chosen}
    users: dict[str, list[str]] = {b.name: [] for b in chosen}
    for b in chosen:
        for dep in waiting[b.name]:
            if dep not in index:
                get_block(mb, dep)      # raises for an unknown name
            users[dep].append(b.name)
    wave = [b.name for b in chosen if not waiting[b.name]]
    out: list[list[Block]] = []
    while wave:
        out.append([chosen[index[n]] for n in wave])
        ready = []
        for n in wave:
            for u in users[n]:
                waiting[u].discard(n)
                if not waiting[u]:
                    ready.append(u)
        wave = sorted(ready, key=index.__getitem__)
    if sum(len(w) for w in out) != len(chosen):
        stuck = ", ".join(n for n, deps in waiting.items() if deps)
        raise UserError(f"circular block dependencies in {mb.path} among: {stuck}")
    return out

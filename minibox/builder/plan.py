"""Planning one block: instructions + inherited state → sandbox steps + the state it leaves.

A block inherits ENV, WORKDIR, USER, ports and volumes from the base image config and then
from its NEED parents, in NEED order (a later parent wins; a parent's WORKDIR counts only when
it is not ``/``).  BNEED parents are build-order and COPY FROM sources only: nothing of theirs
is inherited.  Planning is pure: it reads no files and runs nothing, so the daemon can plan
(and key) every block before any worker starts.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from minibox import graph, overlay
from minibox.errors import ParseError
from minibox.mbfile.model import (Block, Copy, Env, MiniBoxFile, Pkg, Port, Run, User, Volume,
                                  Workdir)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class BuildState:
    """What a block's instructions see, and what it hands to NEED children."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = ""
    ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @classmethod
    def from_image_config(cls, cfg: dict) -> "BuildState":
        env: dict[str, str] = {}
        for item in cfg.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        return cls(env=env, workdir=cfg.get("WorkingDir") or "/", user=cfg.get("User") or "",
                   ports=sorted(cfg.get("ExposedPorts") or {}),
                   volumes=sorted(cfg.get("Volumes") or {}))

    def copy(self) -> "BuildState":
        return BuildState(dict(self.env), self.workdir, self.user, list(self.ports),
                          list(self.volumes))

    def to_dict(self) -> dict:
        return {"env": self.env, "workdir": self.workdir, "user": self.user,
                "ports": self.ports, "volumes": self.volumes}

    @classmethod
    def from_dict(cls, d: dict) -> "BuildState":
        return cls(dict(d.get("env") or {}), d.get("workdir") or "/", d.get("user") or "",
                   list(d.get("ports") or []), list(d.get("volumes") or []))

    def run_env(self) -> dict[str, str]:
        """The environment a RUN sees: this state's env with a PATH if it has none."""
        env = dict(self.env)
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", "/root")
        return env


def inherit(base: BuildState, parents: list[BuildState]) -> BuildState:
    """The state a block starts from: the base's, then each NEED parent's in order."""
    state = base.copy()
    for p in parents:
        state.env.update(p.env)
        if p.workdir and p.workdir != "/":
            state.workdir = p.workdir
        if p.user:
            state.user = p.user
        for port in p.ports:
            if port not in state.ports:
                state.ports.append(port)
        for vol in p.volumes:
            if vol not in state.volumes:
                state.volumes.append(vol)
    return state


@dataclass
class BlockPlan:
    steps: list[dict]                 # what the sandbox executes, in order
    state: BuildState                 # what the block leaves behind
    key_material: list[dict]          # normalized instructions (no line numbers)
    local_copies: list[tuple[int, int, list[str]]]   # (index, line, sources), context COPYs
    copy_from: list[str]              # blocks whose merged view a COPY FROM= reads
    lines: list[int] = field(default_factory=list)   # line of each key_material entry
    texts: list[str] = field(default_factory=list)   # short text of each entry

    def note(self, line: int, material: dict, text: str) -> None:
        self.key_material.append(material)
        self.lines.append(line)
        self.texts.append(text if len(text) <= 60 else text[:57] + "...")

    @property
    def touches_fs(self) -> bool:
        return bool(self.steps)


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(text: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} from the block's ENV (unknown ones become empty, as in Docker)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def _abs(path: str, workdir: str) -> str:
    joined = posixpath.join(workdir or "/", path)
    norm = posixpath.normpath(joined)
    return "/" + norm.lstrip("/") if norm != "/" else "/"


def makes_layer(block: Block) -> bool:
    """The block has filesystem steps (so ``plan_block`` gives it steps; its layer may still
    turn out empty)."""
    return block.auto_deps or any(isinstance(i, (Workdir, User, Run, Copy, Pkg))
                                  for i in block.instructions)


def check_layer_stacks(mb: MiniBoxFile, base_layers: int, target: str | None = None) -> None:
    """Refuse, naming the block's line, a block whose stack (the base's layers, then one per
    block it NEEDs transitively, and its own) would pass ``overlay.MAX_LAYERS``: its sandbox,
    or a container of an image ending in it, could not mount it."""
    stacks: dict[str, frozenset[str]] = {}
    for wave in graph.waves(mb, target):
        for block in wave:
            stack = frozenset().union(*(stacks[n] for n in block.needs))
            if makes_layer(block):
                stack |= {block.name}
            stacks[block.name] = stack
            if base_layers + len(stack) > overlay.MAX_LAYERS:
                base = f"{base_layers} from the base image, " if base_layers else ""
                raise ParseError(
                    f"block '{block.name}' would stack {base_layers + len(stack)} layers ("
                    f"{base}{len(stack)} from it and the blocks it NEEDs); at most "
                    f"{overlay.MAX_LAYERS} fit in one overlay mount", path=mb.path,
                    line_no=block.line, line_text=f"BLOCK {block.name}",
                    hint="merge blocks, or use BNEED and COPY FROM= for blocks whose files "
                         "only the build needs")


def plan_block(block: Block, inherited: BuildState) -> BlockPlan:
    state = inherited.copy()
    plan = BlockPlan([], state, [], [], [])
    for ins in block.instructions:
        _plan_instruction(ins, state, plan)
    if block.auto_deps:
        plan.steps.append({"op": "autodeps", "line": block.auto_deps_line,
                           **_exec_ctx(state)})
        plan.note(block.auto_deps_line, {"op": "autodeps"}, "AUTO-DEPS")
    return plan


def _exec_ctx(state: BuildState) -> dict:
    return {"env": state.run_env(), "workdir": state.workdir, "user": state.user}


def _plan_instruction(ins, state: BuildState, plan: BlockPlan) -> None:
    if isinstance(ins, Env):
        for k, v in ins.items:
            state.env[k] = expand(v, state.env)
        plan.note(ins.line, {"op": "env", "items": [[k, v] for k, v in ins.items]},
                  "ENV " + " ".join(f"{k}={v}" for k, v in ins.items))
    elif isinstance(ins, Workdir):
        state.workdir = _abs(expand(ins.path, state.env), state.workdir)
        step = {"op": "workdir", "line": ins.line, "path": state.workdir, "user": state.user}
        plan.steps.append(step)
        plan.note(ins.line, _material(step), "WORKDIR " + ins.path)
    elif isinstance(ins, User):
        state.user = expand(ins.user, state.env)
        plan.steps.append({"op": "user", "line": ins.line, "user": state.user})
        plan.note(ins.line, {"op": "user", "user": state.user}, "USER " + ins.user)
    elif isinstance(ins, Run):
        step = {"op": "run", "line": ins.line, "command": ins.command,
                "argv": list(ins.argv) if ins.argv else None, **_exec_ctx(state)}
        plan.steps.append(step)
        plan.note(ins.line, _material(step), "RUN " + ins.command)
    elif isinstance(ins, Copy):
        _plan_copy(ins, state, plan)
    elif isinstance(ins, Pkg):
        step = {"op": "pkg", "line": ins.line, "packages": list(ins.packages),
                **_exec_ctx(state)}
        plan.steps.append(step)
        plan.note(ins.line, _material(step), "PKG " + " ".join(ins.packages))
    elif isinstance(ins, Port):
        port = f"{ins.port}/{ins.proto}"
        if port not in state.ports:
            state.ports.append(port)
        plan.note(ins.line, {"op": "port", "port": port}, "PORT " + port)
    elif isinstance(ins, Volume):
        if ins.path not in state.volumes:
            state.volumes.append(ins.path)
        plan.note(ins.line, {"op": "volume", "path": ins.path}, "VOLUME " + ins.path)


def _plan_copy(ins: Copy, state: BuildState, plan: BlockPlan) -> None:
    dest = expand(ins.dest, state.env)
    step = {"op": "copy", "line": ins.line, "sources": list(ins.sources), "dest": dest,
            "from": ins.from_block, "workdir": state.workdir}
    index = len(plan.key_material)
    plan.steps.append(step)
    where = f"FROM={ins.from_block} " if ins.from_block else ""
    plan.note(ins.line, _material(step), f"COPY {where}{' '.join(ins.sources)} {ins.dest}")
    if ins.from_block:
        if ins.from_block not in plan.copy_from:
            plan.copy_from.append(ins.from_block)
    else:
        plan.local_copies.append((index, ins.line, list(ins.sources)))


def _material(step: dict) -> dict:
    return {k: v for k, v in step.items() if k != "line"}

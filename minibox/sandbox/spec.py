"""What a sandbox run is given (``SandboxSpec``) and what it hands back (``BlockOutcome``).

Both cross Celery as plain JSON: ``to_dict``/``from_dict`` never pickle.  ``validate`` turns a
malformed spec into a ``UserError`` before anything is forked or mounted.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import asdict, dataclass, field, fields

from minibox.errors import UserError

NETWORKS = ("build", "none", "host")     # build: own namespace on the build network

# op -> keys a step must carry (besides "op" and "line")
_REQUIRED = {
    "run": (),                 # "command", or "argv" (checked below)
    "copy": ("sources", "dest"),
    "workdir": ("path",),
    "user": ("user",),
    "pkg": ("packages",),
    "autodeps": (),
}
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")


@dataclass
class SandboxSpec:
    """One build block's filesystem steps and where its overlay lives.

    ``lower_dirs`` and every ``copy_from`` list are ordered TOP-MOST FIRST.  ``upper_dir`` must
    be empty and on the same filesystem as ``work_dir``; ``scratch_dir`` is private to this run.
    """

    lower_dirs: list[str]
    upper_dir: str
    work_dir: str
    scratch_dir: str
    steps: list[dict] = field(default_factory=list)
    context_dir: str | None = None
    copy_from: dict[str, list[str]] = field(default_factory=dict)
    hostname: str = "minibox-build"
    network: str = "build"

    def to_dict(self) -> dict:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "SandboxSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"sandbox spec has unknown fields: {', '.join(unknown)}")
        return cls(**copy.deepcopy(data))

    def validate(self) -> None:
        for name in ("upper_dir", "work_dir", "scratch_dir"):
            _check_dir(name, getattr(self, name))
        for d in self.lower_dirs:
            _check_dir("lower_dirs", d)
        for block, dirs in self.copy_from.items():
            for d in dirs:
                _check_dir(f"copy_from[{block!r}]", d)
        if self.context_dir is not None:
            _check_dir("context_dir", self.context_dir, overlay=False)
        check_network(self.network)
        if not _HOSTNAME.match(self.hostname or ""):
            raise UserError(f"invalid sandbox hostname {self.hostname!r}")
        for i, step in enumerate(self.steps):
            _check_step(i, step)
            src = step.get("from")
            if step["op"] == "copy" and src is None and self.context_dir is None:
                raise UserError(f"COPY at line {step.get('line', '?')} needs a build context, "
                                "but the sandbox spec has no context_dir")
            if step["op"] == "copy" and src is not None and src not in self.copy_from:
                raise UserError(f"COPY at line {step.get('line', '?')}: FROM={src} is not in "
                                "the sandbox spec's copy_from")


def check_network(network: str) -> None:
    if network not in NETWORKS:
        raise UserError(f"unknown build network {network!r}",
                        hint="use --network build (the default), none or host")


def _check_dir(what: str, path: str, overlay: bool = True) -> None:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise UserError(f"sandbox {what} must be an absolute path, not {path!r}")
    if overlay and any(c in path for c in ",:\\"):
        raise UserError(f"sandbox {what} {path!r} contains ',', ':' or '\\', which overlayfs "
                        "mount options cannot carry")
    if not os.path.isdir(path):
        raise UserError(f"sandbox {what} {path!r} is not a directory")


def _check_step(i: int, step: dict) -> None:
    if not isinstance(step, dict):
        raise UserError(f"sandbox step #{i} is not an object")
    op = step.get("op")
    if op not in _REQUIRED:
        raise UserError(f"sandbox step #{i} has unknown op {op!r} "
                        f"(expected one of {', '.join(_REQUIRED)})")
    if not isinstance(step.get("line"), int):
        raise UserError(f"sandbox {op} step #{i} needs an integer line number")
    missing = [k for k in _REQUIRED[op] if k not in step]
    if op == "run" and not step.get("argv") and not isinstance(step.get("command"), str):
        missing.append("command (or argv)")
    if missing:
        raise UserError(f"sandbox {op} step at line {step.get('line', '?')} lacks "
                        f"{', '.join(missing)}")


@dataclass
class StepTiming:
    line: int
    op: str
    seconds: float


@dataclass
class BlockOutcome:
    """How the block went: wall time of ``run_block``, the sandbox set-up time, per step."""

    duration: float
    setup_seconds: float = 0.0
    steps: list[StepTiming] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BlockOutcome":
        return cls(duration=data["duration"], setup_seconds=data.get("setup_seconds", 0.0),
                   steps=[StepTiming(**s) for s in data.get("steps", [])])

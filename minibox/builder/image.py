"""The final image's config: the base config, then what the target block leaves behind."""

from __future__ import annotations

import copy
import json

from minibox.builder.plan import BuildState
from minibox.mbfile.model import MiniBoxFile

_NS = 1_000_000_000


def image_config(base_config: dict, state: BuildState, mb: MiniBoxFile) -> dict:
    """The OCI config section (Env, Cmd, WorkingDir, User, ExposedPorts, Volumes, Labels)."""
    cfg = copy.deepcopy(base_config or {})
    cfg["Env"] = [f"{k}={v}" for k, v in state.env.items()]
    _set(cfg, "WorkingDir", state.workdir if state.workdir not in ("", "/") else
         cfg.get("WorkingDir"))
    _set(cfg, "User", state.user or None)
    _set(cfg, "ExposedPorts", {p: {} for p in state.ports} or None)
    _set(cfg, "Volumes", {v: {} for v in state.volumes} or None)
    if mb.start:
        cfg["Cmd"] = list(mb.start)
    labels = dict(cfg.get("Labels") or {})
    if mb.healthcheck:
        hc = mb.healthcheck
        labels["mini.healthcheck.cmd"] = json.dumps(list(hc.argv))
        labels["mini.healthcheck.interval"] = str(hc.interval)
        cfg["Healthcheck"] = {"Test": ["CMD", *hc.argv], "Interval": hc.interval * _NS,
                              "Timeout": hc.timeout * _NS, "Retries": hc.retries,
                              "StartPeriod": hc.start_period * _NS}
    _set(cfg, "Labels", labels or None)
    return cfg


def _set(cfg: dict, key: str, value) -> None:
    if value in (None, "", {}, []):
        cfg.pop(key, None)
    else:
        cfg[key] = value

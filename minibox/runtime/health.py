"""Healthchecks: the image's label (``mini.healthcheck.cmd``/``.interval``) or --health-*."""

from __future__ import annotations

import json

DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}


def health_config(spec, labels: dict) -> dict | None:
    """The effective healthcheck of a container, or None."""
    if spec.no_healthcheck:
        return None
    if spec.health is not None:
        h = spec.health
        return {"cmd": list(h.cmd), "interval": h.interval, "timeout": h.timeout,
                "retries": h.retries, "start_period": h.start_period}
    raw = labels.get("mini.healthcheck.cmd")
    if not raw:
        return None
    cmd = _label_cmd(raw)
    if not cmd:
        return None
    from minibox.runtime.spec import parse_duration
    cfg = dict(DEFAULTS, cmd=cmd)
    if labels.get("mini.healthcheck.interval"):
        try:
            cfg["interval"] = parse_duration(labels["mini.healthcheck.interval"], "interval")
        except Exception:  # noqa: BLE001 - a bad label keeps the default
            pass
    return cfg


def _label_cmd(raw: str) -> list[str] | None:
    """JSON argv (what the build farm stores), a \\x1f-separated argv, or a shell string."""
    try:
        val = json.loads(raw)
        if isinstance(val, list) and all(isinstance(x, str) for x in val):
            if val and val[0] in ("CMD", "CMD-SHELL"):
                return val[1:] if val[0] == "CMD" else ["/bin/sh", "-c", " ".join(val[1:])]
            return val
        if isinstance(val, str):
            raw = val
    except ValueError:
        pass
    if "\x1f" in raw:
        return [p for p in raw.split("\x1f") if p]
    return ["/bin/sh", "-c", raw] if raw.strip() else None

"""Runs healthchecks on schedule, and restarts exited containers whose restart policy says
so (minibox.runtime.restart), inside the runtime worker (a thread).

The schedule lives in the container records (config.json's ``health`` plus health.json), so
it resumes after a worker restart.  Status: ``starting`` until the first success (failures
during the start period do not count), ``healthy`` after a success, ``unhealthy`` after
``retries`` consecutive failures.  The last 5 probes (times, exit code, output) are kept.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from minibox.runtime import restart
from minibox.atomic import write_json
from minibox.runtime.state import StateStore, read_json

log = logging.getLogger("minibox.health")
KEEP = 5
_started: list[threading.Thread] = []


def start_thread(store: StateStore, runtime=None) -> None:
    """``runtime``: the worker's Runtime, which restarts containers (none: checks only)."""
    if _started:
        return
    t = threading.Thread(target=_loop, args=(store, runtime), name="minibox-health",
                         daemon=True)
    t.start()
    _started.append(t)


def _loop(store: StateStore, runtime) -> None:
    while True:
        try:
            tick(store, runtime=runtime)
        except Exception:  # noqa: BLE001 - one bad record must not stop the checks
            log.exception("healthcheck tick failed")
        time.sleep(0.25)


# container id -> (its healthcheck, its restart policy or None); configs never change
_configs: dict[str, tuple[dict | None, dict | None]] = {}


def _config_of(store: StateStore, cid: str) -> tuple[dict | None, dict | None]:
    if cid not in _configs:
        cfg = read_json(store.dir(cid) / "config.json")
        if cfg is None:
            return None, None       # being created: look again next tick
        policy = restart.policy_of(cfg)
        _configs[cid] = (cfg.get("health"), policy if policy["name"] != "no" else None)
    return _configs[cid]


_listing: list = [None, []]    # the containers dir's (inode, mtime) when listed, its ids


def _ids(store: StateStore) -> list[str]:
    """The container ids, listed again only when the containers dir changed (a container
    made or removed): four times a second, hundreds of idle containers cost a listing.
    A dir changed in the last second is listed anyway: its mtime has the kernel's coarse
    clock, so a second change may not move it (git's "racily clean" rule)."""
    try:
        st = os.stat(store.root)
        stamp = (st.st_ino, st.st_mtime_ns)
        recent = time.time() - st.st_mtime < 1.0
    except OSError:
        stamp, recent = None, True
    if recent or stamp != _listing[0]:
        ids = store.ids()
        for gone in set(_configs) - set(ids):
            _configs.pop(gone, None)
        _listing[:] = [stamp, ids]
    return _listing[1]


def tick(store: StateStore, now: float | None = None, runtime=None) -> None:
    """One pass: only containers that have a healthcheck or a restart policy cost more
    than a dict lookup."""
    now = time.time() if now is None else now
    for cid in _ids(store):
        hc, policy = _config_of(store, cid)
        if not hc and not policy:
            continue
        rec = store.load(cid, with_config=bool(hc))
        if rec is None:
            continue
        eff = rec.effective()
        if policy and runtime is not None and restart.due(policy, eff, now):
            try:
                runtime.restart_exited(cid)
            except Exception:  # noqa: BLE001 - one container's trouble must not stop the rest
                log.exception("restart of %s failed", cid[:12])
            continue
        if not hc or eff["status"] != "running":
            continue
        st = rec.state
        h = read_json(rec.dir / "health.json") or {}
        if h.get("run") != st.get("run"):
            h = {"run": st.get("run"), "status": "starting", "failing_streak": 0, "log": [],
                 "next": (st.get("started_at") or now) + hc["interval"]}
            write_json(rec.dir / "health.json", h)
        if now >= h.get("next", 0):
            probe(rec, hc, h, st)


def probe(rec, hc: dict, h: dict, st: dict) -> dict:
    from minibox.runtime.exec import exec_spec, run_capture
    start = time.time()
    try:
        code, out = run_capture(exec_spec(rec, hc["cmd"]), hc["timeout"])
    except Exception as e:  # noqa: BLE001 - the container went away meanwhile
        code, out = -1, str(e).encode()
    end = time.time()
    in_grace = end - (st.get("started_at") or end) < hc.get("start_period", 0)
    if code == 0:
        h.update(status="healthy", failing_streak=0)
    elif not in_grace:
        h["failing_streak"] = h.get("failing_streak", 0) + 1
        if h["failing_streak"] >= hc.get("retries", 3):
            h["status"] = "unhealthy"
    entry = {"start": start, "end": end, "exit_code": code if code is not None else -1,
             "output": out.decode("utf-8", "replace")[-1024:]}
    if code is None:
        entry["output"] = f"healthcheck timed out after {hc['timeout']}s"
    h["log"] = (h.get("log") or [])[-(KEEP - 1):] + [entry]
    h["next"] = end + hc["interval"]
    write_json(rec.dir / "health.json", h)
    return h

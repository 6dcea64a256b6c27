"""Reading containers (ps, inspect, wait): the daemon does these without the worker."""

from __future__ import annotations

import os
import select
import time

from minibox import kernel
from minibox.errors import MiniBoxError, NotFound
from minibox.runtime.state import StateStore, alive


def wait_exited(store: StateStore, cids: list[str], timeout: float | None) -> dict[str, dict]:
    """Wait until each container has exited (its exit record written) or the timeout.

    Uses pidfds, so no polling while the inits run; then a short poll for the monitor's
    exit.json (written right after the init is reaped).  Returns the effective states."""
    deadline = None if timeout is None else time.monotonic() + timeout
    fds: dict[int, tuple[str, int]] = {}
    for cid in cids:
        rec = store.load(cid)
        if rec is None:
            continue
        st = rec.effective()
        if st["status"] == "running" and alive(st.get("pid"), st.get("pid_start")):
            try:
                fds[kernel.pidfd_open(st["pid"])] = (cid, st["pid"])
            except MiniBoxError:
                pass
    exited: dict[str, int] = {}
    try:
        while fds:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(list(fds), [], [], left)
            if not ready:
                break
            for fd in ready:
                cid, pid = fds.pop(fd)
                exited[cid] = pid
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
    return {cid: _settle(store, cid, deadline, exited.get(cid, 0)) for cid in cids}


def _settle(store: StateStore, cid: str, deadline: float | None, exited_pid: int = 0) -> dict:
    """The state once the monitor has written its exit record (or the deadline passed).
    ``exited_pid``: the init whose pidfd said it is gone (/proc may show it a moment more)."""
    delay = 0.0002
    while True:
        rec = store.load(cid)
        st = rec.effective() if rec is not None else {"status": "removed"}
        if st["status"] == "removed":
            tomb = store.read_tomb(cid)
            if tomb:
                return {"id": cid, "status": "removed", **tomb}
            raise NotFound(f"no such container: {cid}")
        if st["status"] != "running" or (deadline is not None and time.monotonic() >= deadline):
            return st
        if (exited_pid and st.get("pid") == exited_pid) or not alive(st.get("pid"),
                                                                     st.get("pid_start")):
            time.sleep(delay)     # the monitor is writing exit.json: it takes a ms or two
            delay = min(delay * 1.5, 0.005)
            continue
        return st


def _status_text(st: dict) -> str:
    now = time.time()
    if st["status"] == "running":
        return f"Up {_ago(now - (st.get('started_at') or now))}"
    if st["status"] == "created":
        return "Created"
    if st["status"] == "removing":
        return "Removal In Progress"
    code = st.get("exit_code")
    when = st.get("finished_at")
    tail = f" {_ago(now - when)} ago" if when else ""
    return f"Exited ({'?' if code is None or code < 0 else code}){tail}"


def _ago(sec: float) -> str:
    sec = max(0, int(sec))
    for unit, n in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if sec >= n:
            return f"{sec // n} {unit}"
    return f"{sec} seconds"


def summary(store: StateStore, rec) -> dict:
    st = rec.effective()
    health = (st.get("health") or {}).get("status")
    if health is None and st["status"] == "running":
        cfg_health = _has_health(rec)
        health = "starting" if cfg_health else None
    return {"id": rec.id, "short_id": rec.id[:12], "name": rec.name, "image": st.get("image"),
            "command": st.get("command") or [], "created_at": st.get("created_at"),
            "status": st["status"], "status_text": _status_text(st),
            "exit_code": st.get("exit_code"), "oom_killed": st.get("oom_killed", False),
            "health": health or "none", "pid": st.get("pid") or 0,
            "ports": ((st.get("net") or {}).get("ports") or []) if st["status"] == "running"
            else []}


def _has_health(rec) -> bool:
    return bool(_config(rec).get("health"))


def _config(rec) -> dict:
    from minibox.runtime.state import read_json
    return read_json(rec.dir / "config.json") or {}


def matches(s: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "status" and s["status"] not in values:
            return False
        if key == "name" and not any(v in s["name"] for v in values):
            return False
        if key == "id" and not any(s["id"].startswith(v) for v in values):
            return False
        if key == "ancestor" and s["image"] not in values:
            return False
        if key == "health" and s["health"] not in values:
            return False
        if key == "exited" and (s["status"] != "exited" or str(s["exit_code"]) not in values):
            return False
        if key == "label" and not all(_has_label(s.get("labels") or {}, v) for v in values):
            return False
    return True


def _has_label(labels: dict, want: str) -> bool:
    """``KEY`` (set at all) or ``KEY=VALUE``."""
    k, sep, v = want.partition("=")
    return k in labels and (not sep or labels[k] == v)


FILTER_KEYS = ("status", "name", "id", "ancestor", "health", "exited", "label")


def list_containers(store: StateStore, all_: bool = False,
                    filters: dict[str, list[str]] | None = None) -> list[dict]:
    out = []
    with_labels = "label" in (filters or {})
    for rec in store.all():
        s = summary(store, rec)
        if with_labels:           # labels are in config.json: read only when asked
            s["labels"] = _config(rec).get("labels") or {}
        if not all_ and s["status"] != "running" and not (filters or {}).get("status"):
            continue
        if matches(s, filters or {}):
            out.append(s)
    out.sort(key=lambda s: s.get("created_at") or 0, reverse=True)
    return out


def inspect(store: StateStore, ref: str) -> dict:
    cid = store.resolve(ref)
    rec = store.load(cid, with_config=True)
    if rec is None:
        raise NotFound(f"no such container: {ref}")
    st = rec.effective()
    cfg = dict(rec.config)
    proc = dict(cfg.get("process") or {})
    return {"id": cid, "name": rec.name, "state": {k: st.get(k) for k in (
                "status", "pid", "exit_code", "oom_killed", "started_at", "finished_at",
                "created_at", "error", "run", "health", "restart_count", "stopped_by_user")},
            "image": cfg.get("image"), "path": proc.get("argv", [None])[0],
            "args": proc.get("argv", [])[1:], "config": {
                "env": proc.get("env"), "cwd": proc.get("cwd"), "user":
                f"{proc.get('uid')}:{proc.get('gid')}", "hostname": cfg.get("hostname"),
                "labels": cfg.get("labels"), "healthcheck": cfg.get("health")},
            "host_config": cfg.get("spec"), "Mounts": mounts_view(cfg.get("mounts")),
            "cgroup": st.get("cgroup"), "warnings": st.get("warnings") or [],
            "network": st.get("net") if st["status"] == "running" else None,
            "monitor_pid": st.get("monitor_pid"), "dir": str(rec.dir)}


def mounts_view(mounts: list[dict] | None) -> list[dict]:
    """A container's mounts as Docker's inspect shows them (Type, Name, Source, ...)."""
    out = []
    for m in mounts or []:
        kind = m.get("kind")
        view = {"Type": kind, "Source": m.get("host_path") or "", "Destination": m.get("target"),
                "Mode": "ro" if m.get("readonly") else "", "RW": not m.get("readonly"),
                "Propagation": "rprivate" if kind == "bind" else ""}
        if kind == "volume":
            view.update(Name=m.get("source"), Driver="local", Anonymous=bool(m.get("anonymous")))
        elif kind == "tmpfs":
            view["Options"] = m.get("options") or ""
        out.append(view)
    return out

"""The other compose verbs over a project's containers: down, start, stop, restart, ps."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from minibox.compose import netadapter, plan
from minibox.compose.daemon import Daemon
from minibox.compose.model import Project


def _mine(d: Daemon, project: Project, services: list[str] | None = None) -> list[dict]:
    """The project's containers (of ``services`` if given), in the file's service order
    (unknown services -- removed from the file since -- last)."""
    rows = list(d.containers(project.name).values())
    order = {n: i for i, n in enumerate(project.services)}

    def svc(r):
        return (r.get("labels") or {}).get(plan.LABEL_SERVICE, "")
    if services:
        rows = [r for r in rows if svc(r) in services]
    return sorted(rows, key=lambda r: (order.get(svc(r), len(order)), r["name"]))


def service_of(row: dict) -> str:
    return (row.get("labels") or {}).get(plan.LABEL_SERVICE, "?")


def down(d: Daemon, project: Project, volumes: bool, timeout: float, say=print) -> None:
    """Stop (all at once) and remove the project's containers and networks; with
    ``volumes`` its named volumes (those the file declares, not external ones) and the
    containers' anonymous ones too."""
    rows = _mine(d, project)
    running = [r["name"] for r in rows if r["status"] == "running"]
    d.stop(running, timeout)
    with ThreadPoolExecutor(max_workers=8) as pool:     # one worker round trip each
        for name in pool.map(lambda n: d.remove(n, volumes=volumes) or n,
                             [r["name"] for r in reversed(rows)]):
            say(f"Container {name}  Removed")
    for name in netadapter.project_networks(d, project):
        netadapter.remove(d, [name])
        say(f"Network {name}  Removed")
    if volumes:
        names = [v.name for v in project.volumes.values() if not v.external]
        names += [plan.data_volume(project, s) for s in project.services.values() if s.data]
        for name in names:
            if d.remove_volume(name):
                say(f"Volume {name}  Removed")


def stop(d: Daemon, project: Project, services: list[str] | None, timeout: float,
         say=print) -> None:
    rows = [r for r in _mine(d, project, services) if r["status"] == "running"]
    d.stop([r["name"] for r in rows], timeout)
    for r in rows:
        say(f"Container {r['name']}  Stopped")


def start(d: Daemon, project: Project, services: list[str] | None, say=print) -> None:
    """Start the existing, stopped containers, in dependency order."""
    rows = {service_of(r): r for r in _mine(d, project, services)}
    if not rows:
        say(f"no containers of project {project.name} to start (run `minibox compose up`)")
        return
    for wave in plan.waves(project):
        for n in wave:
            r = rows.get(n)
            if r is not None and r["status"] != "running":
                d.start(r["name"])
                say(f"Container {r['name']}  Started")


def restart(d: Daemon, project: Project, services: list[str] | None, timeout: float,
            say=print) -> None:
    stop(d, project, services, timeout, say)
    start(d, project, services, say)


def ps(d: Daemon, project: Project, services: list[str] | None, all_: bool) -> list[list[str]]:
    out = []
    for r in _mine(d, project, services):
        if not all_ and r["status"] != "running":
            continue
        health = r.get("health") or "none"
        status = r["status_text"] + (f" ({health})" if health != "none" else "")
        out.append([r["name"], r["image"], service_of(r), status])
    return out

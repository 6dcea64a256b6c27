"""``compose up``: networks and volumes, images (built in parallel through the farm), then
the containers, each service as soon as its dependencies' conditions hold (in parallel).

Idempotent: a container whose request (its config hash label) and image are unchanged is
left running, or started if it was stopped; only a changed service is recreated.  When a
service cannot start (its start fails, a dependency is unhealthy or failed), its
dependants are not created, and what this ``up`` made is removed again, so nothing
half-started is left running; the error says which service and why.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from minibox.compose import netadapter, plan
from minibox.compose.daemon import Daemon
from minibox.compose.model import Project, Service
from minibox.errors import MiniBoxError, UserError


class ServiceFailed(MiniBoxError):
    exit_code = 1
    kind = "user"


def up(d: Daemon, project: Project, services: list[str] | None, build: bool,
       say=print) -> list[str]:
    """Bring the services (and what they need) up; the names of their containers."""
    names = plan.dependants(project, services or list(project.services))
    made = _Made(d)
    try:
        made.networks = netadapter.ensure(d, project, names, say)
        _volumes(d, project, names, made, say)
        digests = images(d, project, names, build, say)
        existing = d.containers(project.name)
        for name, row in existing.items():
            svc = (row.get("labels") or {}).get(plan.LABEL_SERVICE)
            if svc not in project.services:
                say(f"warning: container {name} belongs to service {svc!r}, which is no "
                    "longer in the file (`minibox compose down` removes it)")
        _Starter(d, project, names, digests, existing, made, say).run()
    except BaseException:
        made.undo(say)
        raise
    return [plan.container_name(project, n) for n in names]


class _Made:
    """What this ``up`` created, to remove again if it fails."""

    def __init__(self, d: Daemon):
        self.d = d
        self.containers: list[str] = []
        self.volumes: list[str] = []
        self.networks: list[str] = []
        self.lock = threading.Lock()

    def undo(self, say) -> None:
        for name in reversed(self.containers):
            self.d.remove(name, volumes=True)
            say(f"Container {name}  Removed (up failed)")
        for v in self.volumes:
            self.d.remove_volume(v)
        netadapter.remove(self.d, self.networks)


def _volumes(d: Daemon, project: Project, names: list[str], made: _Made, say) -> None:
    used = {m.source for n in names for m in project.services[n].volumes if m.kind == "volume"}
    for key in used:
        vol = project.volumes[key]
        if vol.external:
            if not d.volume_exists(vol.name):
                raise UserError(f"external volume {vol.name!r} does not exist",
                                hint=f"create it: minibox volume create {vol.name}")
            continue
        if d.ensure_volume(vol.name, {plan.LABEL_PROJECT: project.name,
                                      "minibox.compose.volume": key}):
            made.volumes.append(vol.name)
            say(f"Volume {vol.name}  Created")


def images(d: Daemon, project: Project, names: list[str], force_build: bool, say) -> dict:
    """Every service's image digest; builds (in parallel) the services with ``build`` whose
    image is missing, or all of them with ``force_build``."""
    refs = {n: plan.image_of(project, project.services[n]) for n in names}
    uniq = list(dict.fromkeys(refs.values()))
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = dict(zip(uniq, pool.map(d.image_digest, uniq)))
    digests = {n: found[refs[n]] for n in names}
    todo = [n for n in names if project.services[n].build and (force_build or not digests[n])]
    build_all(d, project, todo, say)
    for n in names:
        if n in todo:
            digests[n] = d.image_digest(plan.image_of(project, project.services[n]))
        if not digests[n]:
            svc = project.services[n]
            raise UserError(f"service {n!r}: no image {plan.image_of(project, svc)!r} "
                            f"({plan.where_of(project, n, 'image')})",
                            hint="build or import it first, or give the service a `build:`")
    return digests


def build_all(d: Daemon, project: Project, names: list[str], say) -> None:
    """Build the services' images in parallel (each a job on the farm); the first failure
    is raised once all have ended."""
    if not names:
        return

    def one(n: str):
        svc = project.services[n]
        tag = plan.image_of(project, svc)
        say(f"Service {n}  Building {tag}")
        job = d.build(svc.build.context, svc.build.minibox_file, tag)
        rec = d.wait_build(job)
        if rec.get("status") != "done":
            raise ServiceFailed(f"service {n!r}: the build of {tag} {rec.get('status')}: "
                                f"{rec.get('error') or 'see minibox builds logs ' + job}",
                                hint=f"minibox builds logs {job}")
        say(f"Service {n}  Built")

    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        errors = [f.exception() for f in [pool.submit(one, n) for n in names]]
    for e in errors:
        if e is not None:
            raise e


class _Starter:
    """Each service in a thread: wait for its dependencies' conditions, then make sure its
    container is there and running."""

    def __init__(self, d, project, names, digests, existing, made, say):
        self.d, self.project, self.names = d, project, names
        self.digests, self.existing, self.made, self.say = digests, existing, made, say
        self.done = {n: threading.Event() for n in names}
        self.failed: dict[str, str] = {}        # service -> why

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.names))) as pool:
            futures = [pool.submit(self._service, n) for n in self.names]
            for f in futures:
                f.result()
        if self.failed:
            first = next(n for n in self.names if n in self.failed)
            raise ServiceFailed(self.failed[first],
                                hint="`minibox compose logs` shows the services' output")

    def _service(self, n: str) -> None:
        try:
            why = self._wait_deps(self.project.services[n])
            if why:
                self.failed[n] = why
                return
            self._ensure(n)
        except MiniBoxError as e:
            self.failed[n] = f"service {n!r} ({plan.where_of(self.project, n)}): {e.message}"
        finally:
            self.done[n].set()

    def _wait_deps(self, svc: Service) -> str | None:
        for dep, cond in svc.depends_on.items():
            self.done[dep].wait()
            if dep in self.failed:
                return f"service {svc.name!r} was not started: its dependency {dep!r} failed"
            why = self._condition(dep, cond)
            if why:
                where = plan.where_of(self.project, svc.name, f"depends_on.{dep}") \
                    if f"services.{svc.name}.depends_on.{dep}" in self.project.lines else \
                    plan.where_of(self.project, svc.name, "depends_on")
                return f"service {svc.name!r} was not started ({where}): {why}"
        return None

    def _condition(self, dep: str, cond: str) -> str | None:
        name = plan.container_name(self.project, dep)
        if cond == "service_started":
            return None
        if cond == "service_healthy":
            return self.d.wait_until(name, lambda i: _health_verdict(dep, i))
        return self.d.wait_until(name, lambda i: _completed_verdict(dep, i))

    def _ensure(self, n: str) -> None:
        svc = self.project.services[n]
        body = plan.request(self.project, svc, 1, netadapter.for_service(self.project, svc))
        name = body["name"]
        cur = self.existing.get(name)
        if cur is not None:
            info = self.d.inspect(name) or {}
            same = ((info.get("config") or {}).get("labels") or {}).get(plan.LABEL_HASH) == \
                body["labels"][plan.LABEL_HASH] and \
                (info.get("image") or {}).get("digest") == self.digests[n]
            if same:
                if info["state"]["status"] == "running":
                    self.say(f"Container {name}  Running")
                else:
                    self.d.start(name)
                    self.say(f"Container {name}  Started")
                return
            self.d.remove(name)
            self.say(f"Container {name}  Recreate")
        with self.made.lock:
            self.made.containers.append(name)
        self.d.run(body)
        self.say(f"Container {name}  Started")


def _health_verdict(dep: str, info: dict | None) -> str | None:
    """None while undecided; "" when healthy; else why not."""
    if info is None:
        return f"its dependency {dep!r} is gone"
    st = info["state"]
    if not (info.get("config") or {}).get("healthcheck"):
        return f"its dependency {dep!r} has no healthcheck (condition: service_healthy)"
    health = (st.get("health") or {})
    if health.get("status") == "healthy":
        return ""
    if health.get("status") == "unhealthy":
        last = (health.get("log") or [{}])[-1]
        out = (last.get("output") or "").strip().splitlines()
        return (f"its dependency {dep!r} is unhealthy (last check exited "
                f"{last.get('exit_code')}{': ' + out[-1] if out else ''})")
    if st["status"] != "running":
        return f"its dependency {dep!r} exited ({st.get('exit_code')}) before it was healthy"
    return None


def _completed_verdict(dep: str, info: dict | None) -> str | None:
    if info is None:
        return f"its dependency {dep!r} is gone"
    st = info["state"]
    if st["status"] == "running" or st["status"] == "created":
        return None
    if st.get("exit_code") == 0:
        return ""
    return f"its dependency {dep!r} did not complete successfully (exit {st.get('exit_code')})"

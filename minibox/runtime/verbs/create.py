"""The ``create`` verb: a container made from a validated spec, not started.

Everything is decided here once (image, argv, user, environment, mounts and volumes, the
/etc files, the healthcheck) and written to config.json; state.json says "created".
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from minibox.errors import Conflict, UserError
from minibox.hostsfile import hosts_text
from minibox.runtime.state import ids
from minibox.runtime import images, process
from minibox.runtime import volumes as volume_store
from minibox.runtime.spec import from_request
from minibox.runtime.state.status import Status
from minibox.wire.runtime import ContainerSpec

if TYPE_CHECKING:
    from minibox.runtime.service import Runtime

__all__ = ["create"]


def create(rt: Runtime, request: ContainerSpec | dict) -> str:
    """The container's directory, config.json and state.json ("created"), its name and its
    volumes; on any failure, none of them.  ``request``: a ContainerSpec, or a raw request
    body (validated here: callers in this process)."""
    spec = request if isinstance(request, ContainerSpec) else from_request(request)
    net = None
    if spec.network not in ("none", "host"):
        net = rt.net.lookup(spec.network)  # an unknown network: NotFound, nothing made
        for other in spec.extra_networks:
            rt.net.lookup(other)
    image = images.resolve(rt.data_root, spec.image)
    argv = process.argv(spec, image)
    uid, gid, groups, home = process.user(spec, image)
    cid = ids.new_id()
    hostname = spec.hostname or (socket.gethostname() if spec.network == "host" else cid[:12])
    if spec.name:
        name = spec.name
        rt.store.claim_name(name, cid)     # an atomic symlink: a duplicate is a Conflict
    else:
        name = _claim_random_name(rt, cid)
    d = rt.store.dir(cid)
    mounts: list[dict] = []
    try:
        mounts = _mounts(rt, spec, image, cid)
        d.mkdir(mode=0o700)
        for sub in ("upper", "work"):
            (d / sub).mkdir(mode=0o755)
        labels = {**(image.config.get("Labels") or {}), **spec.labels}
        config = {
            "spec": spec.to_dict(), "image": {"ref": spec.image, "name": image.name,
                                               "digest": image.digest, "layers": image.layers},
            "process": {"argv": argv, "env": process.environment(spec, image, hostname, home),
                        "cwd": spec.workdir or image.config.get("WorkingDir") or "/",
                        "uid": uid, "gid": gid, "groups": groups},
            "hostname": hostname, "mounts": mounts, "labels": labels,
            "health": _health(spec, labels),
            "etc_files": _etc_files(hostname, spec.network, net),
            "exposed_ports": sorted(image.config.get("ExposedPorts") or {}),
        }
        # not fsync'd here: start() has config + state + dirs fsync'd (in the background)
        rt.store.save_config(cid, config, sync=False)
        rt.store.save_state(cid, sync=False, state={
            "id": cid, "name": name, "status": Status.CREATED.value, "image": spec.image,
            "image_digest": image.digest, "command": argv, "created_at": time.time(), "run": 0,
            "pid": 0, "exit_code": None, "oom_killed": False})
    except BaseException:
        for vol in volume_store.anonymous_of(mounts):
            rt.volumes.discard(vol)
        rt.store.release_name(name, cid)
        rt.store.remove_dir(cid)
        raise
    return cid


def _claim_random_name(rt: Runtime, cid: str) -> str:
    # another thread may take the same random name between the pick and the claim; the
    # names in use are listed only after a clash (the claim itself is the check)
    for attempt in range(20):
        name = ids.random_name(rt.store.taken_names() if attempt else ())
        try:
            rt.store.claim_name(name, cid)
            return name
        except Conflict:
            if attempt == 19:
                raise
    raise AssertionError("unreachable")


def _mounts(rt: Runtime, spec: ContainerSpec, image, cid: str) -> list[dict]:
    """The container's mounts: its -v/--tmpfs ones, then an anonymous volume for each
    image VOLUME they do not cover; parents before children.  Volumes are made here
    (anonymous ones for ``cid``) and filled from the image when new; on a failure the
    anonymous ones made are removed again."""
    made: list[str] = []
    try:
        out = [_mount(rt, m.kind, m.source, m.target, m.readonly, m.options, image, cid,
                           made) for m in spec.mounts]
        taken = {os.path.normpath(m.target) for m in spec.mounts}
        for target in images.image_volumes(image):
            if target not in taken:
                out.append(_mount(rt, "volume", "", target, False, "", image, cid, made))
    except BaseException:
        for name in made:
            rt.volumes.discard(name)
        raise
    return sorted(out, key=lambda m: len(m["target"].rstrip("/").split("/")))


def _mount(rt: Runtime, kind: str, source: str, target: str, readonly: bool, options: str,
           image, cid: str, made: list[str]) -> dict:
    item = {"kind": kind, "source": source, "target": target, "readonly": readonly,
            "options": options}
    if kind == "bind":
        if not os.path.exists(source):
            raise UserError(f"bind mount source {source} does not exist",
                            hint="create it first; minibox does not create host paths")
        item["host_path"] = os.path.realpath(source)
    elif kind == "volume":
        if not source:
            source = rt.volumes.create_anonymous(cid)
            made.append(source)
        item.update(source=source, name=source, anonymous=source in made,
                    host_path=str(rt.volumes.ensure(source)))
        rt.volumes.copy_up(source, image.layers, target)
    return item


def _etc_files(hostname: str, network: str, net=None) -> dict:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf of a container.  Its init writes them
    into its own /dev tmpfs at each start and bind-mounts them (rootfs.bind_etc_files): no
    files on disk per container."""
    hosts = hosts_text(hostname, host_network=network == "host")
    if network == "host":
        resolv = _read("/etc/resolv.conf")
    else:
        if network == "none":
            resolv = "# --network none: no DNS\n"
        elif network != "bridge" and net is not None:
            # a user-defined network: its resolver (names of the containers on it, others
            # forwarded to the host's resolvers), on the gateway
            resolv = f"nameserver {net.gateway}\noptions ndots:0\n"
        else:
            from minibox.net import resolv as net_resolv
            resolv = net_resolv.for_namespace()
    return {"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": resolv}


def _health(spec: ContainerSpec, labels: dict) -> dict | None:
    from minibox.runtime.health import health_config
    return health_config(spec, labels)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""

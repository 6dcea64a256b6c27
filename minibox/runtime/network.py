"""A container's network, kept by the runtime worker (the hooks of minibox/net for containers).

``--network bridge`` (the default) or a network's name: before the container's init is
cloned, the worker makes a network namespace, plugs it into the network's bridge (a veth whose
inner end is created directly in it as eth0, an address leased from the network's IPAM, the
default route, lo up) and hands it over as a path the init setns'es into
(``plan["netns"]``, see mbinit.c / init.py).  Once the container runs, the worker lets go of
the namespace: the container holds it, and when its last process exits the kernel deletes
the veth.  ``release`` (on the container's exit, seen by ``ExitWatcher``, and on ``rm``)
drops its address and its port rules; ``resync`` (the runtime worker's start) re-applies
every rule from state and drops what no running container owns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from dataclasses import dataclass

from minibox.errors import MiniBoxError

log = logging.getLogger(__name__)
OWN_NETWORKS = ("none", "host")


@dataclass
class Plugged:
    """A namespace made for a container, not yet handed over."""

    fd: int
    network: dict            # Network.to_dict()
    address: str
    gateway: str
    prefixlen: int
    host_if: str
    ports: list = None       # PortMap, with the host ports picked
    names: list = None       # what other containers on the network resolve to it
    extra: list = None       # its other networks' endpoints (info dicts: eth1, eth2...)

    @property
    def path(self) -> str:
        """What the container's init opens (a magic link: any root process can open it
        while this worker holds the fd)."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def info(self) -> dict:
        return {"name": self.network["name"], "bridge": self.network["bridge"],
                "ip": self.address, "prefixlen": self.prefixlen, "gateway": self.gateway,
                "host_if": self.host_if, "ports": [p.to_dict() for p in self.ports or []],
                "names": list(self.names or []), "extra": list(self.extra or [])}


def host_if_of(cid: str, n: int = 0) -> str:
    """The host end of a container's veth on its ``n``-th network (0: eth0's)."""
    return "mb" + cid[:13] if n == 0 else f"mb{cid[:11]}n{n}"


def endpoints(info: dict | None) -> list[dict]:
    """Every network endpoint of a container's network info: eth0's, then the others."""
    return [info, *(info.get("extra") or [])] if info else []


class ContainerNetworks:
    def __init__(self, settings):
        self.settings = settings
        self._ensured: set[str] = set()
        self._lock = threading.Lock()
        self._held: dict = {}                # cid -> ports.Held (its host ports)
        from minibox.net.names import Names

        self.names = Names()                 # who answers to which name, per network
        self._dns: dict = {}                 # net name -> dns.Resolver

    # --- which network ----------------------------------------------------------------------
    def lookup(self, name: str):
        from minibox.net.network import default_network
        from minibox.net.registry import Registry

        if name == "bridge":
            return default_network(self.settings)
        return Registry(self.settings).get(name)

    def _ensure(self, net) -> None:
        from minibox.net import links

        with self._lock:
            if net.name in self._ensured and links.index_of(net.bridge) is not None:
                return
            net.ensure(self.settings)
            self._ensured.add(net.name)

    # --- a container's start --------------------------------------------------------------
    def plug(self, cid: str, network: str, maps: list | None = None,
             names: list[str] | None = None,
             extra: dict[str, list[str]] | None = None) -> Plugged | None:
        """A namespace on ``network`` for container ``cid`` with its port maps (None:
        --network none/host), and on each network of ``extra`` (name -> the container's
        names there) too.  A host port in use fails here, before anything is made."""
        if network in OWN_NETWORKS:
            return None
        from minibox.net import iptables, links, netns, ports
        from minibox.net.ipam import Ipam

        net = self.lookup(network)
        more = [(self.lookup(n), ns) for n, ns in (extra or {}).items()]
        for n in [net, *(m for m, _ in more)]:
            self._ensure(n)
        maps, held = ports.hold(maps or [], f"container {cid[:12]}")
        ipam = Ipam(self.settings.net_dir, net)
        fd = -1
        host_if = host_if_of(cid)
        others: list[dict] = []
        try:
            lease = ipam.allocate(cid)
            links.remove_link(host_if)       # a previous run's, if its namespace is still dying
            fd = netns.create()
            links.attach(fd, net.bridge, host_if, lease.address, lease.prefixlen, lease.gateway)
            for i, (m, ns) in enumerate(more, 1):
                others.append(self._attach_more(fd, cid, i, m, ns))
            if maps:
                iptables.Rules(self.settings).set(f"ports:{cid}",
                                                  ports.rules(maps, lease.address))
        except BaseException:
            held.close()
            if fd >= 0:
                os.close(fd)
                with contextlib.suppress(Exception):
                    links.remove_link(host_if)
            ipam.release(cid)
            for e in others:
                self._release_endpoint(cid, e)
            with contextlib.suppress(Exception):
                iptables.Rules(self.settings).drop(f"ports:{cid}")
            raise
        with self._lock:
            self._held[cid] = held
        plugged = Plugged(fd, net.to_dict(), lease.address, lease.gateway, lease.prefixlen,
                          host_if, maps, [n for n in names or [] if n], others)
        for e in endpoints(plugged.info()):
            self._member(e["name"], cid, e)
        return plugged

    def _attach_more(self, fd: int, cid: str, n: int, net, names: list[str]) -> dict:
        """The namespace's ``eth<n>`` on another network (no default route); its info."""
        from minibox.net import links
        from minibox.net.ipam import Ipam

        ipam = Ipam(self.settings.net_dir, net)
        host_if = host_if_of(cid, n)
        lease = ipam.allocate(cid)
        try:
            links.remove_link(host_if)
            links.attach(fd, net.bridge, host_if, lease.address, lease.prefixlen,
                         lease.gateway, ifname=f"eth{n}", default_route=False)
        except BaseException:
            ipam.release(cid)
            raise
        return {"name": net.name, "bridge": net.bridge, "ip": lease.address,
                "prefixlen": lease.prefixlen, "gateway": lease.gateway, "host_if": host_if,
                "names": [x for x in names if x]}

    # --- names (user-defined networks) ---------------------------------------------------
    def _member(self, net_name: str, cid: str, info: dict | None) -> None:
        """Add (``info``) or remove (None) a container from a network's names; its
        resolver answers from them at once.  It runs while the network has members: it
        starts with the first and stops with the last (a removed network's address must
        not stay bound: another network, of this daemon or another, may get it next)."""
        if net_name == "bridge":
            return                           # the default network has no names (as Docker)
        with self._lock:
            left = self.names.set(net_name, cid, (info or {}).get("names"),
                                  (info or {}).get("ip"))
            if info is not None and net_name not in self._dns:
                self._start_resolver(net_name, info["gateway"])
            elif not left and net_name in self._dns:
                self._dns.pop(net_name).close()

    def _start_resolver(self, net_name: str, gateway: str) -> None:
        """(under self._lock)"""
        from minibox.net import dns

        # a resolver on this address under another name belongs to a network that was
        # removed (live networks never share a subnet): it holds the address's port 53
        for old in [n for n, r in self._dns.items() if r.address == gateway]:
            self._dns.pop(old).close()
            self.names.forget(old)
            self._ensured.discard(old)
        try:
            self._dns[net_name] = dns.Resolver(
                gateway, dns.host_upstream(),
                lookup=lambda name, peer: self.names.lookup(net_name, name, peer))
        except OSError as e:
            log.warning("no name resolution on network %s (%s:53: %s)", net_name,
                        gateway, e.strerror)

    def handed_over(self, plugged: Plugged | None) -> None:
        """The container runs in it now: let go of our fd."""
        if plugged is not None:
            with contextlib.suppress(OSError):
                os.close(plugged.fd)

    def unplug(self, cid: str, plugged: Plugged | None) -> None:
        """The start failed: remove what ``plug`` made."""
        if plugged is None:
            return
        self.handed_over(plugged)
        self.release(cid, plugged.info())

    # --- a container's end --------------------------------------------------------------------
    def release(self, cid: str, info: dict | None) -> None:
        """Its veths (if the kernel has not deleted them yet), addresses and port rules."""
        from minibox.net import iptables

        with self._lock:
            held = self._held.pop(cid, None)
        if held is not None:
            held.close()
        iptables.Rules(self.settings).drop(f"ports:{cid}")
        for e in endpoints(info):
            self._release_endpoint(cid, e)

    def _release_endpoint(self, cid: str, e: dict) -> None:
        from minibox.net import links
        from minibox.net.ipam import Ipam
        from minibox.net.network import Network

        self._member(e["name"], cid, None)
        with contextlib.suppress(MiniBoxError):
            links.remove_link(e.get("host_if") or host_if_of(cid))
        net = Network(e["name"], e["bridge"], _subnet(e), "bridge")
        Ipam(self.settings.net_dir, net).release(cid)

    def resync(self, running: dict[str, dict]) -> None:
        """The runtime worker's start: ``running`` maps the running containers' ids to their
        network info.  Drop every lease and rule section another container owns; re-apply."""
        from minibox.net import iptables
        from minibox.net.ipam import Ipam

        from minibox.net import ports

        rules = iptables.Rules(self.settings)
        rules.drop_where(lambda sec: sec.startswith("ports:") and sec[6:] not in running)
        for cid, info in running.items():             # names; hold their host ports again
            for e in endpoints(info):
                self._member(e["name"], cid, e)
            maps = [ports.PortMap.from_dict(d) for d in info.get("ports") or []]
            if maps and cid not in self._held:
                try:
                    self._held[cid] = ports.hold(maps, f"container {cid[:12]}")[1]
                except MiniBoxError as e:
                    log.warning("%s", e.message)
        for net in self._known_networks():
            Ipam(self.settings.net_dir, net).prune(
                lambda owner: owner in running or owner.startswith("build:"))
        rules.resync()

    def _known_networks(self) -> list:
        from minibox.net.network import default_network
        from minibox.net.registry import Registry

        return [default_network(self.settings), *Registry(self.settings).all()]


def _subnet(info: dict) -> str:
    import ipaddress

    return str(ipaddress.IPv4Network(f"{info['gateway']}/{info['prefixlen']}", strict=False))


class ExitWatcher:
    """A thread that calls ``on_exit(cid, info, pid)`` when a watched container's init
    ``pid`` exits."""

    def __init__(self, on_exit):
        self.on_exit = on_exit
        self._poll = select.poll()
        self._fds: dict[int, tuple[str, dict, int]] = {}
        self._gone: list[tuple[str, dict, int]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._poll.register(self._wake_r, select.POLLIN)
        self._thread = threading.Thread(target=self._run, name="minibox-exits", daemon=True)
        self._thread.start()

    def watch(self, cid: str, pid: int, info: dict) -> None:
        """Never calls ``on_exit`` itself (the caller may hold the locks it takes): an
        init that is already gone is handed to the thread too."""
        with self._lock:
            try:
                fd = os.pidfd_open(pid)
            except OSError:                  # already gone
                self._gone.append((cid, info, pid))
            else:
                self._fds[fd] = (cid, info, pid)
                self._poll.register(fd, select.POLLIN)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"w")

    def _fire(self, cid: str, info: dict, pid: int) -> None:
        try:
            self.on_exit(cid, info, pid)
        except Exception:                    # noqa: BLE001 - keep watching the others
            log.exception("cleaning up after container %s", cid)

    def _run(self) -> None:
        while True:
            for fd, _ev in self._poll.poll():
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    with self._lock:
                        gone, self._gone = self._gone, []
                    for item in gone:
                        self._fire(*item)
                    continue
                with self._lock:
                    item = self._fds.pop(fd, None)
                    self._poll.unregister(fd)
                os.close(fd)
                if item is not None:
                    self._fire(*item)

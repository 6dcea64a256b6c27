"""Links through pyroute2 (imported here only, lazily): bridges, veth pairs, sysctls.  The
veth of ``attach`` (one per build block and container start) is one hand-packed rtnetlink
request (``kernel.veth_into``, minibox/kernel/netlink.py), not a pyroute2 call.

Every netlink error is translated once, here, into ``KernelError`` naming the link.
"""

from __future__ import annotations

import contextlib
import errno as E
import os
import threading

from minibox import kernel
from minibox.errors import KernelError
from minibox.net import netns

_local = threading.local()


def _ipr():
    """This thread's netlink socket in the host's namespace (made once per thread and
    process: a forked child never shares its parent's socket)."""
    ipr = getattr(_local, "ipr", None)
    if ipr is None or _local.pid != os.getpid():
        from pyroute2 import IPRoute

        ipr = _local.ipr = IPRoute()
        _local.pid = os.getpid()
    return ipr


@contextlib.contextmanager
def _netlink(what: str):
    from pyroute2 import NetlinkError

    try:
        yield
    except NetlinkError as e:
        raise KernelError(f"{what}: {e.args[1] if len(e.args) > 1 else e}",
                          errno=e.code) from None


def index_of(name: str) -> int | None:
    """The link's index (a read of /sys: no netlink dump of every link)."""
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def set_sysctl(key: str, value: str) -> None:
    """Write ``net/ipv4/...`` (a path under /proc/sys) unless it already has the value."""
    path = "/proc/sys/" + key.replace(".", "/") if "/" not in key else "/proc/sys/" + key
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise KernelError(f"cannot set sysctl {key}={value}: {e.strerror}",
                          errno=e.errno or 0) from None


def ensure_bridge(name: str, gateway: str, prefixlen: int, *,
                  route_localnet: bool = False) -> int:
    """The bridge ``name`` up with ``gateway/prefixlen`` (created if missing); its index.

    IPv4 forwarding is turned on (outbound NAT needs it).  ``route_localnet`` (for port maps
    on 127.0.0.1) is set on this bridge only, never on ``all``; the DROP rule in
    iptables.network_rules keeps the host's loopback closed to the bridge (CVE-2020-8558).
    """
    ipr = _ipr()
    idx = index_of(name)
    if idx is None:
        with _netlink(f"cannot create bridge {name}"):
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except Exception as e:          # noqa: BLE001 - a concurrent creator won
                if getattr(e, "code", 0) != E.EEXIST:
                    raise
        idx = index_of(name)
        if idx is None:
            raise KernelError(f"bridge {name} vanished right after it was created")
    with _netlink(f"cannot set up bridge {name}"):
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=idx, family=2)}
        if (gateway, prefixlen) not in have:
            try:
                ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
            except Exception as e:          # noqa: BLE001
                if getattr(e, "code", 0) != E.EEXIST:
                    raise
        ipr.link("set", index=idx, state="up")
    set_sysctl("net.ipv4.ip_forward", "1")
    set_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1" if route_localnet else "0")
    return idx


def remove_link(name: str) -> None:
    """Delete a link (a bridge, or a veth and its peer); absent is fine."""
    idx = index_of(name)
    if idx is None:
        return
    with _netlink(f"cannot delete link {name}"):
        try:
            _ipr().link("del", index=idx)
        except Exception as e:              # noqa: BLE001
            if getattr(e, "code", 0) != E.ENODEV:
                raise


def attach(ns_fd: int, bridge: str, host_if: str, address: str, prefixlen: int,
           gateway: str, ifname: str = "eth0", default_route: bool = True,
           ipv6: bool = True) -> None:
    """Plug namespace ``ns_fd`` into ``bridge``: a veth ``host_if`` whose peer is created
    directly inside the namespace as ``ifname`` (no move, no rename), ``address/prefixlen``
    on it, it and lo up, and (``default_route``) the default route via ``gateway``; a
    container on more networks gets eth1, eth2... with only their subnet's route.  Without
    ``ipv6`` the peer takes no IPv6 address, route-advertisement or neighbour state (its
    ``disable_ipv6``; lo keeps ::1).  On failure nothing is left."""
    br = index_of(bridge)
    if br is None:
        raise KernelError(f"bridge {bridge} does not exist", hint="ensure the network first")
    try:
        # one request: the pair, the peer made inside the namespace, enslaved and up
        kernel.veth_into(host_if, br, ifname, ns_fd)
    except KernelError as e:
        raise KernelError(f"cannot create veth {host_if} on {bridge}: "
                          f"{os.strerror(e.errno)}", errno=e.errno) from None
    try:
        with netns.inside(ns_fd):          # inside: ioctls, no netlink library needed
            kernel.set_link_up("lo")
            if not ipv6:
                _disable_ipv6(ifname)
            kernel.set_ipv4_address(ifname, address, prefixlen)
            kernel.set_link_up(ifname)
            if default_route:
                kernel.add_default_route(gateway)
    except BaseException:
        with contextlib.suppress(Exception):
            remove_link(host_if)
        raise


def _disable_ipv6(ifname: str) -> None:
    """In this thread's namespace (its /proc/sys/net); nothing to do on a kernel without IPv6."""
    if os.path.exists(f"/proc/sys/net/ipv6/conf/{ifname}"):
        set_sysctl(f"net/ipv6/conf/{ifname}/disable_ipv6", "1")


def veth_ready(host_if: str, bridge: str) -> bool:
    """The host end ``host_if`` exists, is on ``bridge`` and is up with a carrier (so its
    peer is up too): two reads of /sys, no netlink."""
    base = f"/sys/class/net/{host_if}"
    try:
        with open(base + "/operstate") as f:
            if f.read().strip() != "up":
                return False
        return os.path.basename(os.readlink(base + "/master")) == bridge
    except OSError:
        return False

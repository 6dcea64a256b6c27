"""Networking kernel state shared by builds and containers: bridges, veths, network
namespaces, IP leases and MiniBox's own iptables chains.

API (stable; compose builds project networks on it)::

    from minibox.net import Network, build_network, default_network
    net = default_network(settings)          # Network(name, bridge, subnet, kind)
    net.ensure(settings)                     # bridge up, sysctls, NAT/isolation rules (idempotent)
    lease = Ipam(settings.net_dir, net).allocate(owner)       # ipam: persisted, flock'ed
    ns = netns.create()                      # an fd on a fresh network namespace
    links.attach(ns, net.bridge, host_if, lease.address, lease.prefixlen, lease.gateway)
    Rules(settings).set(section, [(table, chain, rule)]) / .drop(section) / .resync()
    Registry(settings).create(name, subnet=None) / .get(name) / .all() / .remove(name, users)

Modules: network (what a network is, overlap checks), netns (create / enter a namespace),
links (pyroute2: bridge, veth, sysctls; the veth of ``attach`` through ``kernel.veth_into``,
one hand-packed rtnetlink request), ipam (leases), iptables (chains rendered from state,
applied atomically with iptables-restore), resolv (a container's resolv.conf), buildnet (the
build steps' network: a pool of prepared namespaces, reused between blocks), nsstate (what a
namespace holds, read from inside: its configuration and its leftover sockets), ports (port maps: parse, hold, DNAT
rules), registry (user-defined networks: create/get/all/remove), dns (a network's resolver),
names (who answers to which name, per network and asker), state (the flock'ed JSON files).  Containers use them through minibox/runtime/network.py.
Raw syscalls and raw netlink stay in minibox/kernel/; pyroute2 is imported lazily, never at CLI start.
"""

from minibox.net.network import Network, build_network, default_network

__all__ = ["Network", "build_network", "default_network"]

"""What is in a network namespace, read from inside it: /proc/thread-self/net after a setns
of the calling thread (no netlink, no process in the namespace; ~0.2 ms).

``look`` returns a ``View``: its ``config`` (the interfaces' names, the IPv4 addresses and
routes of both tables as /proc/net/fib_trie draws them, and any IPv6 address or route on an
interface other than lo), which a caller compares with the view it took when it set the
namespace up; and its ``leftovers``: TCP TIME_WAIT entries, IP fragment queues, and the
sockets processes made that are still there.  /proc/net/sockstat counts those per namespace
(``sockets: used``; the kernel's own are not counted), which is one read when it is zero.
It also counts, for a few milliseconds, a socket already closed whose memory the kernel
frees after an RCU grace period (netlink sockets, listeners): then the namespace's socket
tables decide, as the next block would see them: every socket of any family that can
carry anything (TCP, UDP, raw, ping, packet, unix, bound netlink; an orphaned TCP socket
still sending, a unix socket with sockets in flight in its queue) is listed there from its
creation or binding until it is closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from minibox.net import netns

_FILES = ("dev", "fib_trie", "if_inet6", "ipv6_route", "sockstat", "sockstat6")
# (file, line prefix, field after which the count follows)
_COUNTERS = (("sockstat", "sockets:", "used"), ("sockstat", "TCP:", "tw"),
             ("sockstat", "FRAG:", "inuse"), ("sockstat6", "FRAG6:", "inuse"))
_TABLES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6", "icmp",
           "icmp6", "unix", "packet", "netlink")


@dataclass(frozen=True)
class View:
    config: str
    leftovers: tuple[str, ...]


def look(ns_fd: int) -> View:
    """The namespace ``ns_fd`` as its own /proc/net shows it."""
    with netns.inside(ns_fd):
        texts = {name: _read(name) for name in _FILES}
        left = _counted(texts)
        if "sockets used" in left:              # or freed, not yet reclaimed: list them
            del left["sockets used"]
            left.update(_listed())
    return View(_config(texts), tuple(f"{what} {n}" for what, n in left.items()))


def _read(name: str) -> str:
    try:
        with open(f"/proc/thread-self/net/{name}") as f:
            return f.read()
    except FileNotFoundError:          # no IPv6 in this kernel
        return ""


def _config(texts: dict[str, str]) -> str:
    names = [ln.split(":", 1)[0].strip() for ln in texts["dev"].splitlines()[2:]]
    # IPv6: address and device of each address; destination, source, next hop and device
    # of each route (not its use and reference counts)
    v6 = [" ".join(f[i] for i in (0, 5)) for f in _fields(texts["if_inet6"]) if f[5] != "lo"]
    v6 += [" ".join(f[i] for i in (0, 1, 2, 3, 4, 9))
           for f in _fields(texts["ipv6_route"]) if f[9] != "lo"]
    return "\n".join(["interfaces: " + " ".join(sorted(names)), texts["fib_trie"]] + v6)


def _fields(text: str) -> list[list[str]]:
    return [f for f in (ln.split() for ln in text.splitlines()) if len(f) >= 6]


def _counted(texts: dict[str, str]) -> dict[str, int]:
    """The sockstat counters above that are not zero."""
    out = {}
    for name, prefix, field in _COUNTERS:
        for line in texts[name].splitlines():
            words = line.split()
            if words[:1] == [prefix] and field in words[1:-1]:
                count = int(words[words.index(field, 1) + 1])
                if count:
                    out[f"{prefix.lower().rstrip(':')} {field}"] = count
    return out


def _listed() -> dict[str, int]:
    """Sockets in the tables of this thread's namespace (netlink: not the kernel's, port 0)."""
    out = {}
    for name in _TABLES:
        rows = [ln.split() for ln in _read(name).splitlines()[1:]]
        n = sum(1 for r in rows if r and (name != "netlink" or r[2] != "0"))
        if n:
            out[name] = n
    return out

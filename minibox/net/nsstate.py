"""What is in a network namespace, read from inside it: /proc/thread-self/net after a setns
of the calling thread (no netlink, no process in the namespace; ~0.2 ms).

``look`` returns a ``View``: its ``config`` (the interfaces' names, the IPv4 addresses and
routes of both tables as /proc/net/fib_trie draws them, and any IPv6 address or route on an
interface other than lo), which a caller compares with the view it took when it set the
namespace up; and its ``leftovers``: the per-namespace counters of /proc/net/sockstat and
sockstat6 that are not zero: sockets of any family still open (TCP, UDP, raw, packet, unix,
netlink; an orphaned TCP socket still sending, a socket in flight in a unix socket's queue),
TCP TIME_WAIT entries and IP fragment queues.  The kernel's own sockets of the namespace are
not counted (``sockets: used`` counts the sockets processes made).
"""

from __future__ import annotations

from dataclasses import dataclass

from minibox.net import netns

_FILES = ("dev", "fib_trie", "if_inet6", "ipv6_route", "sockstat", "sockstat6")
# (file, line prefix, field after which the count follows)
_COUNTERS = (("sockstat", "sockets:", "used"), ("sockstat", "TCP:", "tw"),
             ("sockstat", "FRAG:", "inuse"), ("sockstat6", "FRAG6:", "inuse"))


@dataclass(frozen=True)
class View:
    config: str
    leftovers: tuple[str, ...]


def look(ns_fd: int) -> View:
    """The namespace ``ns_fd`` as its own /proc/net shows it."""
    with netns.inside(ns_fd):
        texts = {name: _read(name) for name in _FILES}
    return View(_config(texts), _leftovers(texts))


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


def _leftovers(texts: dict[str, str]) -> tuple[str, ...]:
    out = []
    for name, prefix, field in _COUNTERS:
        for line in texts[name].splitlines():
            words = line.split()
            if words[:1] == [prefix] and field in words[1:-1]:
                count = words[words.index(field, 1) + 1]
                if count != "0":
                    out.append(f"{prefix.lower().rstrip(':')} {field} {count}")
    return tuple(out)

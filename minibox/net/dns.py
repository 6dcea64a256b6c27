"""A small DNS responder for user-defined networks: containers reach each other by name.

The runtime worker runs one per network, on the network's gateway address, port 53/udp
(containers on the network get it as their only nameserver).  It answers A queries for the
names on that network (container names, ``--network-alias``es, short ids) from a table the
worker updates as containers start and go (``Resolver.set``), so it is always current, with
no file in the container to rewrite.  Other names are forwarded to the host's resolvers and
the answer relayed; names it does not know and cannot forward get NXDOMAIN.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading

log = logging.getLogger(__name__)
TTL = 5


def _qname(data: bytes, off: int) -> tuple[str, int]:
    labels = []
    while True:
        n = data[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def answer(query: bytes, lookup) -> bytes | None:
    """The reply to ``query`` from ``lookup(name) -> addresses or None`` (or a table:
    lower-case name -> addresses), or None when the name is not ours (forward it)."""
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    if qd != 1 or flags & 0x8000:
        return None
    name, end = _qname(query, 12)
    qtype, qclass = struct.unpack("!HH", query[end:end + 4])
    key = name.lower().rstrip(".")
    addrs = lookup.get(key) if isinstance(lookup, dict) else lookup(key)
    if addrs is None:
        return None
    question = query[12:end + 4]
    rd = flags & 0x0100
    answers = b""
    count = 0
    if qtype in (1, 255) and qclass == 1:             # A (or ANY)
        for a in addrs:
            answers += (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, TTL, 4)
                        + socket.inet_aton(a))
            count += 1
    header = struct.pack("!HHHHHH", qid, 0x8400 | rd | 0x0080, 1, count, 0, 0)
    return header + question + answers


def nxdomain(query: bytes) -> bytes:
    qid, flags = struct.unpack("!HH", query[:4])
    name_end = _qname(query, 12)[1] + 4
    return struct.pack("!HHHHHH", qid, 0x8183 | (flags & 0x0100), 1, 0, 0, 0) + \
        query[12:name_end]


class Resolver:
    """One network's responder (a thread on ``address``:``port``/udp).  It answers from
    ``lookup(name, peer_address)`` if given (names.Names: what the asking container may
    know), else from the table ``set`` gives it."""

    def __init__(self, address: str, upstream: list[str], port: int = 53, lookup=None):
        self.table: dict[str, list[str]] = {}
        self.address = address
        self.upstream = upstream
        self.lookup = lookup
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind((address, port))
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"minibox-dns-{address}")
        self._thread.start()

    def set(self, table: dict[str, list[str]]) -> None:
        with self._lock:
            self.table = {k.lower(): v for k, v in table.items()}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                if self.lookup is not None:
                    reply = answer(query, lambda name: self.lookup(name, peer[0]))
                else:
                    with self._lock:
                        table = self.table
                    reply = answer(query, table)
                if reply is None:
                    reply = self._forward(query) or nxdomain(query)
                self.sock.sendto(reply, peer)
            except (ValueError, struct.error, IndexError):
                continue
            except OSError as e:
                log.debug("dns: %s", e)

    def _forward(self, query: bytes) -> bytes | None:
        for server in self.upstream:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                try:
                    s.sendto(query, (server, 53))
                    return s.recv(4096)
                except OSError:
                    continue
        return None


def host_upstream() -> list[str]:
    """The host's resolvers, as the worker (on the host) can reach them."""
    out = []
    try:
        with open("/etc/resolv.conf") as f:
            for ln in f:
                parts = ln.split()
                if parts[:1] == ["nameserver"] and len(parts) > 1 and ":" not in parts[1]:
                    out.append(parts[1])
    except OSError:
        pass
    return out

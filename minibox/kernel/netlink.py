"""rtnetlink, packed by hand: the one request a build block's namespace needs, a veth pair
whose peer is made directly inside a network namespace, its host end enslaved to a bridge
and up.

pyroute2 does the same in ~5 ms of CPU per request (its message classes and an asyncio loop
per call); this is one ``struct.pack`` and one send/recv on a netlink socket, ~0.1 ms.  The
build network's pool makes one namespace per block, in a thread of the worker that runs the
blocks, so that CPU was taken from the blocks themselves.
"""

from __future__ import annotations

import _socket   # the C modules: importing minibox.kernel stays as cheap as it was
import _thread
import os
import struct

from minibox.errors import KernelError

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
_IFINFO = struct.Struct("=BxHiII")          # family, type, index, flags, change
_HEADER = struct.Struct("=IHHII")           # len, type, flags, seq, pid

_local = _thread._local()


def _attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def veth_request(host_if: str, master: int, peer: str, peer_ns_fd: int, seq: int) -> bytes:
    """The RTM_NEWLINK message (create, exclusive, acked) for ``veth_into``."""
    peer_msg = _IFINFO.pack(_socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(peer)) \
        + _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_ns_fd))
    info = _attr(IFLA_INFO_KIND, _name("veth")) + \
        _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
    body = _IFINFO.pack(_socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) \
        + _attr(IFLA_IFNAME, _name(host_if)) + _attr(IFLA_MASTER, struct.pack("=I", master)) \
        + _attr(IFLA_LINKINFO, info)
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    return _HEADER.pack(_HEADER.size + len(body), RTM_NEWLINK, flags, seq, 0) + body


def _sock():
    """This thread's rtnetlink socket, bound in the namespace the thread was in when it was
    made (the host's, for the pool's thread); a forked child makes its own."""
    sock = getattr(_local, "sock", None)
    if sock is None or _local.pid != os.getpid():
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                              NETLINK_ROUTE)
        sock.bind((0, 0))
        _local.sock, _local.pid, _local.seq = sock, os.getpid(), 0
    return sock


def veth_into(host_if: str, master: int, peer: str, peer_ns_fd: int) -> None:
    """Create veth ``host_if`` (enslaved to the bridge of index ``master``, up) whose peer is
    ``peer`` inside the namespace ``peer_ns_fd``.  Raises KernelError with the kernel's errno
    (EEXIST: ``host_if`` exists already)."""
    try:
        _ack(veth_request(host_if, master, peer, peer_ns_fd, _next_seq()))
    except OSError as e:
        raise KernelError(f"cannot create veth {host_if} (peer {peer}): {e.strerror}",
                          errno=e.errno or 0) from None


def _next_seq() -> int:
    _sock()
    _local.seq += 1
    return _local.seq


def _ack(message: bytes) -> None:
    """Send ``message`` on this thread's socket and wait for its acknowledgement; OSError
    with the kernel's errno if it refused."""
    sock = _sock()
    seq = _HEADER.unpack_from(message)[3]
    sock.send(message)
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + _HEADER.size <= len(data):
            size, kind, _flags, got, _pid = _HEADER.unpack_from(data, offset)
            if kind == NLMSG_ERROR and got == seq:
                error = struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                if error:
                    raise OSError(-error, os.strerror(-error))
                return
            offset += max(size + (-size % 4), _HEADER.size)

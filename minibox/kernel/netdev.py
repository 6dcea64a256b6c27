"""A network namespace's own interface, set up from inside it with ioctls (no netlink
library, microseconds): up, an IPv4 address, the default route."""

from __future__ import annotations

from minibox.errors import KernelError

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def set_link_up(name: str = "lo") -> None:
    """Bring network interface ``name`` up in this network namespace (ioctl SIOCSIFFLAGS)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = struct.pack("16sH14x", name.encode()[:15], 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode()[:15],
                                                               flags | _IFF_UP))
        except OSError as e:
            raise KernelError(f"cannot bring interface {name} up: {e.strerror}",
                              errno=e.errno or 0) from None


_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_SIOCADDRT = 0x890B
_RTF_UP, _RTF_GATEWAY = 0x1, 0x2


def _ifreq_inet(name: str, addr: str) -> bytes:
    import socket
    import struct

    sin = struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(addr))
    return struct.pack("16s16s8x", name.encode()[:15], sin)


def set_ipv4_address(name: str, address: str, prefixlen: int) -> None:
    """Give interface ``name`` ``address/prefixlen`` in this thread's network namespace
    (ioctl SIOCSIFADDR + SIOCSIFNETMASK: no netlink library, microseconds)."""
    import fcntl
    import ipaddress
    import socket

    mask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefixlen}").netmask)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), _SIOCSIFADDR, _ifreq_inet(name, address))
            fcntl.ioctl(s.fileno(), _SIOCSIFNETMASK, _ifreq_inet(name, mask))
        except OSError as e:
            raise KernelError(f"cannot give {name} the address {address}/{prefixlen}: "
                              f"{e.strerror}", errno=e.errno or 0) from None


def add_default_route(gateway: str) -> None:
    """``default via gateway`` in this thread's network namespace (ioctl SIOCADDRT)."""
    import fcntl
    import socket
    import struct

    def sin(a: str) -> bytes:
        return struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(a))

    # struct rtentry (LP64): pad1, dst, gateway, genmask, flags, pad2, pad3, pad4, metric,
    # dev, mtu, window, irtt
    rt = struct.pack("@L16s16s16sHhLPhPLLH", 0, sin("0.0.0.0"), sin(gateway), sin("0.0.0.0"),
                     _RTF_UP | _RTF_GATEWAY, 0, 0, 0, 0, 0, 0, 0, 0)
    rt += b"\0" * (-len(rt) % 8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), _SIOCADDRT, rt)
        except OSError as e:
            raise KernelError(f"cannot add the default route via {gateway}: {e.strerror}",
                              errno=e.errno or 0) from None

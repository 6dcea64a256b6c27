"""Port maps (``-p [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]``, ranges, ``-P``): parsing, the
host-port check and hold, and the DNAT rules.

A map is DNATed in MiniBox's nat PORTS chain, which is jumped to only for packets addressed
to the host itself (``addrtype LOCAL``, from PREROUTING and OUTPUT): a container's outbound
connection to another address on the same port is never redirected.  Maps on 127.0.0.1 work
through route_localnet on the bridge (see iptables.network_rules for the matching DROP).
Each host port is also *held*: the runtime worker binds and listens on it (never accepting;
the DNAT takes every packet before it), so a port in use is refused before the container
starts, and no other program can take a mapped port later.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from dataclasses import asdict, dataclass

from minibox.errors import UserError

_SPEC = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9]+(?:\.[0-9]+){3}):)?(?:(?P<host>[0-9-]*):)?"
                   r"(?P<ctr>[0-9]+(?:-[0-9]+)?)(?:/(?P<proto>[A-Za-z]+))?$")
PROTOS = ("tcp", "udp")


@dataclass(frozen=True)
class PortMap:
    host_ip: str        # "" = every host address
    host_port: int      # 0 = pick a free one at start
    ctr_port: int
    proto: str = "tcp"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PortMap":
        return cls(d["host_ip"], int(d["host_port"]), int(d["ctr_port"]), d.get("proto", "tcp"))

    def text(self) -> str:
        return f"{self.ctr_port}/{self.proto} -> {self.host_ip or '0.0.0.0'}:{self.host_port}"


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UserError(f"invalid port mapping {spec!r}: {what} port {text!r} is not a number "
                        "from 1 to 65535", hint="-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]")
    return int(text)


def _range(text: str, what: str, spec: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    a = _port(lo, what, spec)
    b = _port(hi, what, spec) if sep else a
    if b < a:
        raise UserError(f"invalid port mapping {spec!r}: {what} range {text} ends before it "
                        "starts")
    return list(range(a, b + 1))


def parse(spec: str) -> list[PortMap]:
    """One ``-p`` value -> its maps (a range gives one per port)."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise UserError(f"invalid port mapping {spec!r}",
                        hint="-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp], e.g. -p 8080:80, "
                             "-p 127.0.0.1:5432:5432, -p 9000-9002:9000-9002/udp")
    ip = (m.group("ip") or "").strip("[]")
    if ip:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            raise UserError(f"invalid port mapping {spec!r}: {ip!r} is not an IPv4 address",
                            hint="give a host IPv4 address, or leave it out") from None
        ip = "" if addr.is_unspecified else str(addr)
    proto = (m.group("proto") or "tcp").lower()
    if proto not in PROTOS:
        raise UserError(f"invalid port mapping {spec!r}: unknown protocol {proto!r}",
                        hint="use /tcp or /udp")
    ctr = _range(m.group("ctr"), "container", spec)
    host_text = m.group("host")
    host = _range(host_text, "host", spec) if host_text else [0] * len(ctr)
    if len(host) != len(ctr):
        if len(ctr) == 1 and host_text:          # a host range for one port: docker takes
            host = host[:1]                      # the first free; we take the first
        else:
            raise UserError(f"invalid port mapping {spec!r}: the host range has "
                            f"{len(host)} ports, the container range {len(ctr)}",
                            hint="give ranges of the same length")
    return [PortMap(ip, h, c, proto) for h, c in zip(host, ctr)]


def parse_all(specs: list[str]) -> list[PortMap]:
    out: list[PortMap] = []
    for s in specs:
        out += parse(str(s))
    seen = set()
    for p in out:
        key = (p.host_ip, p.host_port, p.proto)
        if p.host_port and key in seen:
            raise UserError(f"host port {p.host_port}/{p.proto} is mapped twice",
                            hint="map each host port once")
        seen.add(key)
    return out


def exposed(image_ports: list[str]) -> list[PortMap]:
    """``-P``: the image's PORTs ("80/tcp") to free host ports."""
    out = []
    for p in image_ports:
        num, _, proto = p.partition("/")
        if num.isdigit():
            out.append(PortMap("", 0, int(num), (proto or "tcp").lower()))
    return out


# --- holding host ports -------------------------------------------------------------------
class Held:
    """The sockets holding one container's host ports (close to release)."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []

    def close(self) -> None:
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()
        self.socks.clear()


def hold(maps: list[PortMap], where: str) -> tuple[list[PortMap], Held]:
    """Bind every host port (picking a free one for port 0); a port in use is a UserError
    naming it.  Returns the maps with their ports and what holds them."""
    held = Held()
    out = []
    try:
        for p in maps:
            kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
            held.socks.append(s)
            try:
                s.bind((p.host_ip or "0.0.0.0", p.host_port))
            except OSError as e:
                what = "in use" if e.errno == 98 else e.strerror
                addr = f"{p.host_ip}:" if p.host_ip else ""
                raise UserError(f"host port {addr}{p.host_port}/{p.proto} for {where} is "
                                f"{what}", hint="choose another host port (-p HOSTPORT:"
                                                f"{p.ctr_port}), or stop what uses it") from None
            if kind == socket.SOCK_STREAM:
                s.listen(1)
            out.append(PortMap(p.host_ip, s.getsockname()[1], p.ctr_port, p.proto))
    except BaseException:
        held.close()
        raise
    return out, held


def rules(maps: list[PortMap], address: str) -> list[tuple[str, str, str]]:
    """The DNAT rules of one container's maps (nat PORTS: local destinations only)."""
    out = []
    for p in maps:
        dst = f"-d {p.host_ip} " if p.host_ip else ""
        out.append(("nat", "PORTS", f"-p {p.proto} {dst}--dport {p.host_port} -j DNAT "
                                    f"--to-destination {address}:{p.ctr_port}"))
    return out

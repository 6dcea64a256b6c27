"""/etc/resolv.conf for a sandbox or container in its own network namespace.

The host's file, with loopback resolvers (127.0.0.53 of systemd-resolved, a local dnsmasq)
replaced by reachable ones: systemd-resolved's upstream list if there is one; otherwise
they are dropped (with none left, public resolvers, as Docker does).
"""

from __future__ import annotations

import ipaddress

HOST = "/etc/resolv.conf"
UPSTREAM = ("/run/systemd/resolve/resolv.conf",)
FALLBACK = ("8.8.8.8", "8.8.4.4")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def _nameservers(text: str) -> list[str]:
    return [ln.split()[1] for ln in text.splitlines()
            if ln.split()[:1] == ["nameserver"] and len(ln.split()) > 1]


def for_namespace(host_text: str | None = None, upstream_text: str | None = None) -> str:
    text = _read(HOST) if host_text is None else host_text
    lines = text.splitlines()
    servers = _nameservers(text)
    if not any(_is_loopback(s) for s in servers):
        return text if text.endswith("\n") or not text else text + "\n"
    keep = [s for s in servers if not _is_loopback(s)]
    if not keep:
        up = "".join(_read(p) for p in UPSTREAM) if upstream_text is None else upstream_text
        keep = [s for s in _nameservers(up) if not _is_loopback(s)] or list(FALLBACK)
    out = [ln for ln in lines if ln.split()[:1] != ["nameserver"]]
    out += [f"nameserver {s}" for s in keep]
    return "\n".join(out) + "\n"

"""/etc/hosts of a container or a build step: the one writer of its content.

On its own network: localhost and its hostname on 127.0.1.1.  On the host's network: the
host's own file (its names are the sandbox's), with the hostname on 127.0.1.1 added when the
file does not name it already.  User networks' names are resolved by their DNS server
(minibox.net), not listed here.
"""

from __future__ import annotations

__all__ = ["LOCALHOST", "hosts_text"]

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def hosts_text(hostname: str, *, host_network: bool, host_file: str = "/etc/hosts") -> str:
    if not host_network:
        return f"{LOCALHOST}127.0.1.1\t{hostname}\n"
    try:
        with open(host_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = LOCALHOST
    names = {n for line in text.splitlines() for n in line.split("#", 1)[0].split()[1:]}
    if hostname in names:
        return text
    return text.rstrip("\n") + f"\n127.0.1.1\t{hostname}\n"

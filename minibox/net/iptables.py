"""MiniBox's own iptables chains, rendered from persisted state and applied atomically.

Each owner (``net:<network>``, ``ports:<container id>``, ...) has a *section*: a list of
``(table, chain, rule)``.  Sections live in ``<net_dir>/rules.json`` (flock'ed); every change
re-renders every chain of this instance from all sections and applies them in one
``iptables-restore --noflush`` transaction (declaring a chain there flushes it), so applying
is idempotent: no duplicates after restarts, and ``resync`` after a crash drops whatever the
state no longer lists.  Chains are named ``<prefix>-<chain>`` (``MINIBOX_NET_CHAIN_PREFIX``),
so two daemons on one host never touch each other's rules.  The built-in chains only get one
jump each into ours (checked with ``-C`` before inserting): checked by each process's first
change and by every ``resync`` (a daemon or worker start), not on every change (five
``iptables -C`` runs were ~40-90 ms of each ``run -p`` and of its ``rm``).

Chains: filter ``INPUT`` (the CVE-2020-8558 drop), ``FORWARD`` and ``ISOLATE`` (between
networks); nat ``PORTS`` (DNAT of port maps, jumped to for local destinations from
PREROUTING and OUTPUT) and ``POSTROUTING`` (outbound NAT, 127.0.0.1 maps).
"""

from __future__ import annotations

import re
import subprocess

from minibox.errors import KernelError, UserError
from minibox.net.state import JsonState

CHAINS = {"filter": ("INPUT", "FORWARD", "ISOLATE"), "nat": ("PORTS", "POSTROUTING")}
_JUMPS = (("filter", "INPUT", ""), ("filter", "FORWARD", ""),
          ("nat", "PREROUTING", "-m addrtype --dst-type LOCAL"),
          ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL"),
          ("nat", "POSTROUTING", ""))
_TARGET = {"INPUT": "INPUT", "FORWARD": "FORWARD", "PREROUTING": "PORTS", "OUTPUT": "PORTS",
           "POSTROUTING": "POSTROUTING"}
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,14}$")
_JUMPED: set[str] = set()       # prefixes whose jumps this process has checked


def network_rules(net) -> list[tuple[str, str, str]]:
    """A network's rules: forwarding, isolation from other networks, outbound NAT, and the
    drop of packets from the bridge to 127.0.0.0/8 that were not DNATed (kube-proxy's rule
    against CVE-2020-8558, needed because port maps on 127.0.0.1 set route_localnet)."""
    b, s = net.bridge, net.subnet
    rules = [
        ("filter", "INPUT", f"-i {b} -d 127.0.0.0/8 -m conntrack ! --ctstate "
                            "RELATED,ESTABLISHED,DNAT -j DROP"),
        ("filter", "FORWARD", f"-i {b} ! -o {b} -m conntrack ! --ctstate DNAT -j @ISOLATE"),
        ("filter", "FORWARD", f"-i {b} -j ACCEPT"),
        ("filter", "FORWARD", f"-o {b} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT "
                              "-j ACCEPT"),
        ("filter", "ISOLATE", f"-o {b} -j DROP"),
        ("nat", "POSTROUTING", f"-s {s} ! -o {b} -j MASQUERADE"),
    ]
    if net.kind == "bridge":
        rules += [
            ("nat", "POSTROUTING", f"-o {b} -s 127.0.0.0/8 -j MASQUERADE"),
            ("nat", "POSTROUTING", f"-o {b} -s {s} -d {s} -m conntrack --ctstate DNAT "
                                   "-j MASQUERADE"),
        ]
    return rules


class Rules:
    def __init__(self, settings):
        self.prefix = settings.chain_prefix
        if not _PREFIX.match(self.prefix):
            raise UserError(f"invalid MINIBOX_NET_CHAIN_PREFIX {self.prefix!r}",
                            hint="a letter, then up to 14 letters, digits or '_'")
        self.state = JsonState(settings.net_dir, "rules")

    def chain(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def sections(self) -> dict[str, list]:
        with self.state.locked():
            return self.state.read()

    # --- changes ----------------------------------------------------------------------------
    def set(self, section: str, rules: list[tuple[str, str, str]]) -> None:
        """Make ``section`` exactly ``rules`` and apply (no-op if already so and applied)."""
        rules = [list(r) for r in rules]
        with self.state.locked():
            state = self.state.read()
            if state.get(section) == rules:
                return
            state[section] = rules
            self._apply(state)
            self.state.write(state)

    def drop(self, section: str) -> None:
        self.drop_where(lambda name: name == section)

    def drop_where(self, gone) -> list[str]:
        """Remove every section ``gone(name)`` accepts; re-apply if any was."""
        with self.state.locked():
            state = self.state.read()
            names = [n for n in state if gone(n)]
            if names:
                for n in names:
                    del state[n]
                self._apply(state)
                self.state.write(state)
        return names

    def resync(self) -> None:
        """Re-apply every chain from state (a daemon start; after a crash), and check the
        jumps into them again."""
        _JUMPED.discard(self.prefix)
        with self.state.locked():
            self._apply(self.state.read())

    def remove_all(self) -> None:
        """Remove this instance's jumps and chains and forget its state."""
        _JUMPED.discard(self.prefix)
        with self.state.locked():
            for table, builtin, match in _JUMPS:
                rule = f"{match} -j {self.chain(_TARGET[builtin])}".split()
                while _run(["iptables", "-w", "-t", table, "-C", builtin, *rule],
                           check=False) == 0:
                    _run(["iptables", "-w", "-t", table, "-D", builtin, *rule], check=False)
            for table, chains in CHAINS.items():
                for c in chains:
                    _run(["iptables", "-w", "-t", table, "-F", self.chain(c)], check=False)
                for c in chains:
                    _run(["iptables", "-w", "-t", table, "-X", self.chain(c)], check=False)
            self.state.remove()

    # --- applying ---------------------------------------------------------------------------
    def render(self, state: dict) -> str:
        out = []
        for table, chains in CHAINS.items():
            out.append(f"*{table}")
            out += [f":{self.chain(c)} - [0:0]" for c in chains]
            for c in chains:
                for name in sorted(state):
                    for t, chain, rule in state[name]:
                        if t == table and chain == c:
                            out.append(f"-A {self.chain(c)} "
                                       + rule.replace("@", self.prefix + "-"))
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def _apply(self, state: dict) -> None:
        text = self.render(state)
        p = subprocess.run(["iptables-restore", "-w", "--noflush"], input=text.encode(),
                           capture_output=True)
        if p.returncode != 0:
            raise KernelError(f"iptables-restore refused MiniBox's rules: "
                              f"{p.stderr.decode(errors='replace').strip()}",
                              hint="is iptables (nft or legacy) installed and usable?")
        if self.prefix not in _JUMPED:
            self._ensure_jumps()
            _JUMPED.add(self.prefix)

    def _ensure_jumps(self) -> None:
        for table, builtin, match in _JUMPS:
            rule = f"{match} -j {self.chain(_TARGET[builtin])}".split()
            if _run(["iptables", "-w", "-t", table, "-C", builtin, *rule], check=False) != 0:
                _run(["iptables", "-w", "-t", table, "-I", builtin, "1", *rule])


def _run(argv: list[str], check: bool = True) -> int:
    p = subprocess.run(argv, capture_output=True)
    if check and p.returncode != 0:
        raise KernelError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace').strip()}")
    return p.returncode

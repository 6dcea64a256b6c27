"""The build steps' network: each block's sandbox joins a network namespace of its own on
the build bridge (outbound NAT, so PKG and AUTO-DEPS reach package registries; nothing on
the host's loopback is reachable: it is the namespace's own ``lo``).

Creating and plugging a namespace costs ~10 ms here (most of it the kernel's: the veth is
one hand-packed rtnetlink request, ``kernel.veth_into``), so each worker process keeps a small pool
of prepared ones (as BuildKit does): ``take`` hands one over at once (made on the spot
only if the pool is empty), and ``give_back`` returns it for the next block of the same
worker process when it is safe (below), else retires it: its fd is closed, the namespace
dies and the kernel deletes its veth.  A retired namespace's address goes back to the
pool's own free leases once that veth is gone (checked before each preparation), never
while it could still answer for it, and the next namespace takes it without touching the
IPAM file (each change of that file is a flock, a read and a rename: ~5 ms a block when
leases were taken and given back every time).  A pooled namespace keeps its lease.  Leases
are owned by ``build:<pid>:<start time>:<n>``; a new pool prunes the leases of dead worker
processes (their namespaces died with their fds, and the kernel deleted their veths), and
``close`` releases all of its own at once.

Why a namespace may serve the next block.  A block could only pass something on through
the namespace's state, and nothing of it is left that a fresh namespace would not show:

- it cannot change the namespace's configuration.  Each RUN, PKG and AUTO-DEPS step runs as
  PID 1 of a PID namespace of its own with Docker's default capabilities (sandbox/process.py
  ``DEFAULT_CAPS``, runtime/security/caps.py ``DOCKER_DEFAULT``: no CAP_NET_ADMIN, so no
  address, route, link, neighbour entry, qdisc or netfilter rule of its own; no
  CAP_SYS_ADMIN, so no setns), under seccomp with no user namespaces (so no namespace of its
  own where it would hold CAP_NET_ADMIN), with /proc/sys read-only (rootfs ``READONLY``,
  applied to RUN steps as to containers: a root step could otherwise write the namespace's
  net sysctls, which check the uid, not a capability) and a read-only /sys.  The
  sandbox process itself (our code) only joins the namespace;
- no process of it is left: ``give_back(slot, reusable=True)`` is the caller's word that it
  reaped the block's sandbox and that the sandbox exited by itself, not by a signal.  Then
  the sandbox had waited for each step's PID 1 (also when cancelled: it SIGKILLs the step
  and waits), and a PID 1's exit kills and reaps its whole PID namespace before it can be
  waited for, so every process that was ever in the namespace is dead and its sockets are
  closed.  A sandbox killed by a signal (the worker's SIGKILL after the reap deadline, the
  OOM killer) may leave its step's processes dying *after* the reap: the default,
  ``reusable=False``, retires the namespace;
- no socket of it is left: the pool checks the namespace's own socket counters and, if
  they count one, its socket tables (``nsstate``: open sockets of any family, orphaned TCP
  sockets still closing, sockets in flight in a unix socket, TIME_WAIT entries, fragment
  queues), so the next block sees empty /proc/net tables and can bind every port;
- and the pool checks what a fresh namespace would have: the veth's host end is still on
  the bridge and up (so eth0 is up), the interfaces, the IPv4 addresses and routes are
  those it set up, and eth0 has no IPv6 (``disable_ipv6`` from the start: no route
  advertisement, SLAAC address or IPv6 neighbour state another block on the bridge could
  plant in it).  Left as they are: the kernel's ARP cache (learned, re-validated, and
  open to the same ARP traffic on the bridge as a fresh namespace is while in use) and
  learned path MTUs (a hint that only lowers a packet size); ``MAX_USES`` bounds how long
  any of it can last.

Anything unexpected retires the namespace; the checks run in the pool's thread after the
block (~0.2 ms: sysfs reads and /proc/net read from inside), never in its way.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import threading
from dataclasses import dataclass

from minibox.net import links, netns, nsstate
from minibox.net.ipam import Ipam
from minibox.net.network import build_network

POOL_SIZE = 2
MAX_USES = 64          # blocks one namespace serves before it is retired


@dataclass(eq=False)
class Slot:
    fd: int             # the namespace (O_CLOEXEC; the sandbox setns'es into it)
    host_if: str        # the veth's host end, on the build bridge
    owner: str          # its IP lease's owner
    address: str
    config: str = ""    # the namespace as set up (nsstate.View.config)
    uses: int = 0       # blocks it has served


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(owner: str) -> bool:
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != "build" or not parts[1].isdigit():
        return True                      # not ours to judge
    return _start_time(int(parts[1])) == parts[2]


class BuildNet:
    def __init__(self, settings, size: int = POOL_SIZE):
        self.settings = settings
        self.net = build_network(settings)
        self.size = size
        self.pid = os.getpid()
        self.me = f"build:{self.pid}:{_start_time(self.pid)}"
        self.ipam = Ipam(settings.net_dir, self.net)
        # made, reused, and "retired: <why>" (the caller's outcome, uses, veth, leftovers...)
        self.stats: collections.Counter = collections.Counter()
        self._n = 0
        self._closed = False
        self._ready: list[Slot] = []
        self._returned: list[Slot] = []             # given back to reuse, not checked yet
        self._dying: list[Slot] = []
        self._free: list[tuple[str, str]] = []      # (owner, address): leases to reuse
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self.net.ensure(settings)
        self.ipam.prune(_alive)
        self._thread = threading.Thread(target=self._work, name="minibox-buildnet", daemon=True)
        self._thread.start()

    # --- the sandbox's side --------------------------------------------------------------
    def take(self) -> Slot:
        """A prepared namespace, the last one given back first (made now if none is ready)."""
        with self._lock:
            slot = self._ready.pop() if self._ready else None
        return slot if slot is not None else self._make()

    def give_back(self, slot: Slot, *, reusable: bool = False) -> None:
        """The block is over.  ``reusable``: the caller reaped the block's sandbox and it
        exited by itself, not by a signal (see the module's docstring); the pool's thread
        then checks the namespace and pools it again.  Otherwise it is retired."""
        slot.uses += 1
        if not reusable:
            self._retire(slot, "outcome")
        elif slot.uses >= MAX_USES:
            self._retire(slot, "uses")
        else:
            with self._lock:
                self._returned.append(slot)     # after a close, the thread tears it down
        self._jobs.put("fill")

    def warm(self) -> None:
        self._jobs.put("fill")

    def close(self) -> None:
        """Tear down the pooled namespaces and release every lease of this pool (a test
        session's end; workers just exit).  A slot given back later is torn down then."""
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready + self._returned, []
            self._returned = []
            dying, self._dying = self._dying, []
            free, self._free = self._free, []
        mine = {owner for owner, _ in free}
        for slot in ready + dying:            # a dying slot's fd is closed already
            self._destroy(slot, close=slot in ready, release=False)
            mine.add(slot.owner)
        if mine:
            self.ipam.prune(lambda who: who not in mine)

    def _destroy(self, slot: Slot, close: bool = True, release: bool = True) -> None:
        """Delete the veth at once (the pool's end), close the namespace, release."""
        try:
            with contextlib.suppress(Exception):
                links.remove_link(slot.host_if)
        finally:
            if close:
                with contextlib.suppress(OSError):
                    os.close(slot.fd)
            if release:
                self.ipam.release(slot.owner)

    def _retire(self, slot: Slot, why: str) -> None:
        """Close the namespace (the kernel deletes its veth); its lease is free once it has."""
        with contextlib.suppress(OSError):
            os.close(slot.fd)
        with self._lock:
            self.stats[f"retired: {why}"] += 1
            if not self._closed:
                self._dying.append(slot)
                return
        self._destroy(slot, close=False)            # nothing of a closed pool stays

    # --- the pool's thread ---------------------------------------------------------------
    def wait_idle(self) -> None:
        """Until the pool's thread has done every queued check, fill and teardown."""
        self._jobs.join()

    def _work(self) -> None:
        while True:
            self._jobs.get()
            try:
                self._check_returned()
                while len(self._ready) < self.size and not self._closed:
                    self._pool(self._make(), fresh=True)
            except Exception:                       # noqa: BLE001 - the next take retries
                pass
            finally:
                self._jobs.task_done()

    def _pool(self, slot: Slot, fresh: bool = False) -> None:
        """Ready it: a namespace just used is taken next (it is warm), a new one last."""
        with self._lock:
            if not self._closed:
                self._ready.insert(0, slot) if fresh else self._ready.append(slot)
                return
        self._destroy(slot)

    def _check_returned(self) -> None:
        with self._lock:
            returned, self._returned = self._returned, []
        for slot in returned:
            why = self._unfit(slot)
            if why is not None:
                self._retire(slot, why)
                continue
            with self._lock:
                self.stats["reused"] += 1
            self._pool(slot)

    def _unfit(self, slot: Slot) -> str | None:
        """Why the namespace of a finished block must not serve another (None: it may)."""
        if not links.veth_ready(slot.host_if, self.net.bridge):
            return "veth"
        try:
            view = nsstate.look(slot.fd)
        except Exception:                           # noqa: BLE001 - cannot tell: retire it
            return "unreadable"
        if view.leftovers:
            return "leftovers"
        return "config" if view.config != slot.config else None

    def _recycle_dead(self) -> None:
        """Retired namespaces whose veth the kernel deleted: their leases are free."""
        with self._lock:
            dying = list(self._dying)
        gone = [s for s in dying if links.index_of(s.host_if) is None]
        with self._lock:
            self._dying = [s for s in self._dying if s not in gone]
            self._free += [(s.owner, s.address) for s in gone]

    def _lease(self) -> tuple[str, str]:
        """(owner, address): a free lease of this pool, else a new one from the IPAM file."""
        self._recycle_dead()
        with self._lock:
            if self._free:
                return self._free.pop()
            self._n += 1
            owner = f"{self.me}:{self._n}"
        return owner, self.ipam.allocate(owner).address

    def _make(self) -> Slot:
        owner, address = self._lease()
        with self._lock:
            self._n += 1
            n = self._n
        host_if = f"mbb{self.pid % 100000:05d}{n % 10000000:07d}"[:15]
        fd = -1
        try:
            fd = netns.create()
            links.attach(fd, self.net.bridge, host_if, address, self.net.prefixlen,
                         self.net.gateway, ipv6=False)
            config = nsstate.look(fd).config
        except BaseException:
            with self._lock:          # free again once a veth that may exist is gone
                if fd >= 0:
                    os.close(fd)
                    self._dying.append(Slot(-1, host_if, owner, address))
                else:
                    self._free.append((owner, address))
            raise
        with self._lock:
            self.stats["made"] += 1
        return Slot(fd, host_if, owner, address, config)


_pool: BuildNet | None = None
_pool_lock = threading.Lock()


def configure(settings) -> BuildNet:
    """Make this process's pool from ``settings`` (instead of the environment)."""
    global _pool
    with _pool_lock:
        if _pool is not None and _pool.pid == os.getpid():
            _pool.close()
        _pool = BuildNet(settings)
        return _pool


def pool(settings=None) -> BuildNet:
    """This process's pool (a forked child makes its own, with its parent's settings)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            if settings is None and _pool is not None:
                settings = _pool.settings
            if settings is None:
                from minibox.config import Settings

                settings = Settings.from_env()
            _pool = BuildNet(settings)
        return _pool

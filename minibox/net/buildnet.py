"""The build steps' network: each block's sandbox joins a network namespace of its own on
the build bridge (outbound NAT, so PKG and AUTO-DEPS reach package registries; nothing on
the host's loopback is reachable: it is the namespace's own ``lo``).

Creating and plugging a namespace costs ~10 ms here (most of it the kernel's: the veth is
one hand-packed rtnetlink request, ``kernel.veth_into``), so each worker process keeps a small pool
of prepared ones (as BuildKit does): ``take`` hands one over at once (made on the spot
only if the pool is empty); ``give_back`` asks the pool's thread for a replacement (after
the block, not competing with it) and closes the used one's fd: the namespace dies and the
kernel deletes its veth.  Its address goes back to the pool's own free leases once that veth
is gone (checked before each preparation), never while it could still answer for it, and
the next namespace takes it without touching the IPAM file (each change of that file is a
flock, a read and a rename: ~5 ms a block when leases were taken and given back every
time).  A namespace is never reused.  Leases are owned by ``build:<pid>:<start time>:<n>``;
a new pool prunes the leases of dead worker processes (their namespaces died with their
fds, and the kernel deleted their veths), and ``close`` releases all of its own at once.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass

from minibox.net import links, netns
from minibox.net.ipam import Ipam
from minibox.net.network import build_network

POOL_SIZE = 2


@dataclass
class Slot:
    fd: int             # the namespace (O_CLOEXEC; the sandbox setns'es into it)
    host_if: str        # the veth's host end, on the build bridge
    owner: str          # its IP lease's owner
    address: str


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
        self._n = 0
        self._ready: list[Slot] = []
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
        """A prepared namespace (made now if the pool is empty)."""
        with self._lock:
            slot = self._ready.pop() if self._ready else None
        return slot if slot is not None else self._make()

    def give_back(self, slot: Slot) -> None:
        with contextlib.suppress(OSError):
            os.close(slot.fd)
        with self._lock:
            self._dying.append(slot)
        self._jobs.put("fill")

    def warm(self) -> None:
        self._jobs.put("fill")

    def close(self) -> None:
        """Tear down the prepared namespaces (a test session's end; workers just exit)."""
        with self._lock:
            ready, self._ready = self._ready, []
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

    # --- the pool's thread ---------------------------------------------------------------
    def wait_idle(self) -> None:
        """Until the pool's thread has done every queued fill and teardown."""
        self._jobs.join()

    def _work(self) -> None:
        while True:
            self._jobs.get()
            try:
                while len(self._ready) < self.size:
                    made = self._make()
                    with self._lock:
                        self._ready.append(made)
            except Exception:                       # noqa: BLE001 - the next take retries
                pass
            finally:
                self._jobs.task_done()

    def _recycle_dead(self) -> None:
        """Given-back namespaces whose veth the kernel deleted: their leases are free."""
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
                         self.net.gateway)
        except BaseException:
            with self._lock:          # free again once a veth that may exist is gone
                if fd >= 0:
                    os.close(fd)
                    self._dying.append(Slot(-1, host_if, owner, address))
                else:
                    self._free.append((owner, address))
            raise
        return Slot(fd, host_if, owner, address)


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

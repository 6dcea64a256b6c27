"""Network namespaces held by file descriptors (no bind mount: a namespace nobody holds dies,
and the kernel deletes its veth with it).

``create`` makes one without moving the process: the calling thread unshares, opens its own
namespace and setns'es back (network namespaces are per thread).  ``inside`` runs a block in
a namespace on the calling thread (netlink sockets opened there stay bound to it).
"""

from __future__ import annotations

import contextlib
import os
import threading

from minibox import kernel

_host = threading.local()


def _self_fd() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def create() -> int:
    """A new, empty network namespace (lo down): an O_CLOEXEC fd the caller closes."""
    back = _self_fd()
    try:
        kernel.unshare(kernel.CLONE_NEWNET)
        try:
            return _self_fd()
        finally:
            kernel.setns(back, kernel.CLONE_NEWNET)
    finally:
        os.close(back)


@contextlib.contextmanager
def inside(ns_fd: int):
    """Run the block with this thread in namespace ``ns_fd``; always come back."""
    back = _self_fd()
    try:
        kernel.setns(ns_fd, kernel.CLONE_NEWNET)
        try:
            yield
        finally:
            kernel.setns(back, kernel.CLONE_NEWNET)
    finally:
        os.close(back)


def of_pid(pid: int) -> int:
    """An fd on the network namespace of process ``pid``."""
    return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)

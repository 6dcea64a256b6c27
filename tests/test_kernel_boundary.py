"""Every raw kernel call stays behind minibox/kernel/ (ARCHITECTURE.md: "A syscall"): no
other module loads libc through ctypes or opens a netlink socket by hand, and the package
keeps its one face, ``from minibox import kernel`` then ``kernel.NAME``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import minibox

ROOT = Path(minibox.__file__).parent
RAW = ("import ctypes", "from ctypes", "CDLL(", "AF_NETLINK", "RTM_NEWLINK", "NETLINK_ROUTE")


def test_no_raw_kernel_call_outside_the_kernel_package():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent == ROOT / "kernel":
            continue
        text = path.read_text()
        found += [f"{path.relative_to(ROOT)}: {w}" for w in RAW if w in text]
    assert found == []


def test_the_package_face_offers_what_callers_use():
    from minibox import kernel
    for name in ("mount", "bind_mount", "umount", "pivot_into", "unshare", "setns",
                 "clone_process", "capset", "seccomp_load", "pidfd_open", "posix_spawn",
                 "syncfs", "set_link_up", "add_default_route", "veth_into", "MS_BIND",
                 "CLONE_NEWNET"):
        assert callable(getattr(kernel, name)) or isinstance(getattr(kernel, name), int), name
    from minibox.errors import KernelError
    assert kernel.KernelError is KernelError      # the monitor and init catch k.KernelError


def test_importing_the_kernel_package_stays_light():
    """The veth request needs a netlink socket, made with the _socket C module: importing
    the package pulls in neither socket.py nor a netlink library."""
    code = ("import sys\nfrom minibox import kernel\n"
            "print(sorted(m for m in ('socket', 'pyroute2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"

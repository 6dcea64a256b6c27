"""The hand-packed rtnetlink veth request (``kernel.veth_into``, minibox/kernel/netlink.py)
against the real kernel: the peer is made inside the namespace, the host end is enslaved to
the bridge and up; a kernel refusal is a KernelError with its errno and leaves nothing
behind.  Names are unique per run."""

from __future__ import annotations

import errno
import os
import secrets
import subprocess

import pytest

from minibox.errors import KernelError
from minibox import kernel
from minibox.net import links, netns


@pytest.fixture
def bridge():
    name = f"mbr{secrets.token_hex(4)}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def _links_in(fd: int) -> str:
    with netns.inside(fd):
        return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_veth_into_makes_the_peer_inside_and_the_host_end_on_the_bridge(bridge):
    host_if = f"mbv{secrets.token_hex(4)}"
    fd = netns.create()
    try:
        kernel.veth_into(host_if, links.index_of(bridge), "eth0", fd)
        shown = subprocess.run(["ip", "-o", "link", "show", host_if], capture_output=True,
                               text=True, check=True).stdout
        assert f"master {bridge}" in shown and "UP" in shown.split(">")[0]
        assert " eth0@" in _links_in(fd)
    finally:
        os.close(fd)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def test_a_refused_request_raises_with_the_errno_and_leaves_nothing(bridge):
    host_if = f"mbv{secrets.token_hex(4)}"
    fd = netns.create()
    try:
        kernel.veth_into(host_if, links.index_of(bridge), "eth0", fd)
        with pytest.raises(KernelError, match=f"cannot create veth {host_if} ") as e:
            kernel.veth_into(host_if, links.index_of(bridge), "eth1", fd)   # the same name
        assert e.value.errno == errno.EEXIST
        assert "eth1" not in _links_in(fd)
    finally:
        os.close(fd)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def test_attach_names_the_veth_and_bridge_when_the_kernel_refuses(bridge):
    fd = netns.create()
    host_if = f"mbv{secrets.token_hex(4)}" + "x" * 16          # longer than IFNAMSIZ
    try:
        with pytest.raises(KernelError, match=f"cannot create veth {host_if} on {bridge}: "):
            links.attach(fd, bridge, host_if, "10.255.255.2", 24, "10.255.255.1")
        assert "eth0" not in _links_in(fd)
    finally:
        os.close(fd)

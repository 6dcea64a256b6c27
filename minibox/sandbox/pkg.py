"""PKG and AUTO-DEPS: which command to run, decided by looking inside the image.

PKG picks the package manager the rootfs has (Alpine apk, Debian/Ubuntu apt-get, Fedora/RHEL
dnf/microdnf/yum); ``name@ver`` pins a version prefix (``name=ver*`` for apk and apt,
``name-ver*`` for dnf).  Package names are shell-quoted, so ``*`` reaches the manager intact.
AUTO-DEPS runs every manifest's installer found in the WORKDIR.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from minibox.errors import BuildFailed
from minibox.sandbox import rootfs

_ALPINE = ("/etc/alpine-release", "/sbin/apk", "/usr/sbin/apk", "/bin/apk", "/usr/bin/apk")
_DEBIAN = ("/etc/debian_version", "/usr/bin/apt-get", "/bin/apt-get")
_RPM_BINS = ("dnf", "microdnf", "yum")
_RPM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
_APT_LISTS = "/var/lib/apt/lists"
_APT_LIST_BOOKKEEPING = {"lock", "partial", "auxfiles"}

_MANIFESTS = (("package.json", "npm install"),
              ("requirements.txt", "pip install -r requirements.txt"),
              ("go.mod", "go mod download"),
              ("Cargo.toml", "cargo build --release"))


@dataclass(frozen=True)
class Manager:
    name: str          # "apk", "apt-get", "dnf", "microdnf", "yum"
    family: str        # "alpine", "debian", "rpm"


def detect(root: str) -> Manager | None:
    if any(rootfs.lexists(root, p) for p in _ALPINE):
        return Manager("apk", "alpine")
    if any(rootfs.lexists(root, p) for p in _DEBIAN):
        return Manager("apt-get", "debian")
    for name in _RPM_BINS:
        if any(rootfs.is_file(root, f"{d}/{name}") for d in _RPM_DIRS):
            return Manager(name, "rpm")
    return None


def install_command(root: str, packages: list[str], line: int) -> str:
    """The shell command PKG runs in this image; BuildFailed if it has no package manager."""
    if not packages:
        raise BuildFailed(f"PKG at line {line} names no packages")
    mgr = detect(root)
    if mgr is None:
        raise BuildFailed(
            f"PKG at line {line} needs a package manager in the image, and none was found "
            "(looked for apk: /etc/alpine-release or /sbin/apk; apt-get: /etc/debian_version "
            "or /usr/bin/apt-get; dnf, microdnf or yum in /usr/bin)",
            hint="use a base image with a package manager, or install software with COPY/RUN")
    sep = "-" if mgr.family == "rpm" else "="
    pkgs = " ".join(shlex.quote(_pin(p, sep, line)) for p in packages)
    if mgr.family == "alpine":
        return f"apk add --no-cache {pkgs}"
    if mgr.family == "debian":
        install = f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {pkgs}"
        if _apt_lists_empty(root):
            return f"DEBIAN_FRONTEND=noninteractive apt-get update && {install}"
        return install
    return f"{mgr.name} install -y {pkgs}"


def autodeps_commands(root: str, workdir: str, search_path: str) -> list[tuple[str, str]]:
    """(manifest, command) for every manifest found in ``workdir`` inside the image."""
    found = []
    for manifest, command in _MANIFESTS:
        if rootfs.is_file(root, os.path.join(workdir or "/", manifest)):
            if command.startswith("pip ") and not rootfs.find_executable(root, "pip",
                                                                         search_path):
                if rootfs.find_executable(root, "pip3", search_path):
                    command = "pip3" + command[3:]
            found.append((manifest, command))
    return found


def _pin(spec: str, sep: str, line: int) -> str:
    name, at, version = spec.partition("@")
    if not name or (at and not version):
        raise BuildFailed(f"PKG at line {line}: '{spec}' is not a package name or name@version")
    return f"{name}{sep}{version}*" if at else name


def _apt_lists_empty(root: str) -> bool:
    try:
        names = os.listdir(rootfs.resolve(root, _APT_LISTS))
    except OSError:
        return True
    return not [n for n in names if n not in _APT_LIST_BOOKKEEPING]

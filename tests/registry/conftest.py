"""Fixtures for the registry tests: private docker-registry instances (plain, htpasswd,
bearer token) for the session, and one farm whose Docker Hub mirror is the plain one."""

from __future__ import annotations

import subprocess

import pytest

from tests.farmkit import busybox_farm
from tests.registry.registrykit import Podman, Registry


def _serve(auth: str):
    reg = Registry(auth).start()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry():
    yield from _serve("none")


@pytest.fixture(scope="session")
def basic_registry():
    yield from _serve("basic")


@pytest.fixture(scope="session")
def token_registry():
    yield from _serve("token")


@pytest.fixture(scope="session")
def farm(registry, tmp_path_factory):
    auth = tmp_path_factory.mktemp("auth") / "auth.json"
    f = busybox_farm(tmp_path_factory.mktemp("busybox-base"),
                     {"MINIBOX_REGISTRY_MIRRORS": f"docker.io=http://{registry.host}",
                      "MINIBOX_AUTH_FILE": str(auth)})
    try:
        yield f
    finally:
        f.destroy()


def skopeo_copy(src: str, dest: str, *extra: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    "--dest-tls-verify=false", *extra, src, dest], check=True,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def seeded(farm, registry):
    """busybox in the plain registry as library/busybox:1 (and library/alpine:latest, so that
    `alpine` through the Docker Hub mirror is this busybox)."""
    for dest in ("library/busybox:1", "library/alpine:latest"):
        skopeo_copy(f"oci:{farm.root}:busybox:latest", f"docker://{registry.host}/{dest}")
    return registry


@pytest.fixture(scope="session")
def podman():
    p = Podman()
    try:
        yield p
    finally:
        p.cleanup()

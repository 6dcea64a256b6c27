"""Fixtures for the build-farm tests: one real farm per session, with the busybox base."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.farmkit import DEV_CACHE, REPO, busybox_farm, write_ctx


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    f = busybox_farm(tmp_path_factory.mktemp("busybox-base"))
    try:
        yield f
    finally:
        f.destroy()


@pytest.fixture
def ctx(tmp_path):
    """A fresh build-context directory."""
    d = tmp_path / "ctx"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def debian(farm, tmp_path_factory):
    """The offline Debian 12 minbase, imported as debian:bookworm."""
    tarball = DEV_CACHE / "debian-bookworm.tar.zst"
    if not tarball.exists():
        subprocess.run([str(REPO / "docker-free-dev/make-base-images.sh"), "debian"],
                       check=True)
    ctx = tmp_path_factory.mktemp("debian-base")
    shutil.copy(tarball, ctx / "debian.tar.zst")
    write_ctx(ctx, {"MiniBox": "BASE debian.tar.zst\n"})
    farm.build(ctx, "debian:bookworm")
    return "debian:bookworm"

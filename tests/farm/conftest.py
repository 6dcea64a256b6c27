"""Fixtures for the build-farm tests: one real farm per session, with the busybox base."""

from __future__ import annotations

import shutil

import pytest

from tests.farmkit import Farm, busybox_tarball, write_ctx


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    f = Farm().start()
    try:
        ctx = tmp_path_factory.mktemp("busybox-base")
        shutil.copy(busybox_tarball(), ctx / "busybox.tar.gz")
        write_ctx(ctx, {"MiniBox": "BASE busybox.tar.gz\n"})
        f.build(ctx, "busybox")
        yield f
    finally:
        f.destroy()


@pytest.fixture
def ctx(tmp_path):
    """A fresh build-context directory."""
    d = tmp_path / "ctx"
    d.mkdir()
    return d

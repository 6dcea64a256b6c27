"""Fixtures for the build-farm tests: one real farm per session, with the busybox base."""

from __future__ import annotations

import pytest

from tests.farmkit import Farm, build_busybox


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    f = Farm().start()
    try:
        build_busybox(f, tmp_path_factory.mktemp("busybox-base"))
        yield f
    finally:
        f.destroy()


@pytest.fixture
def ctx(tmp_path):
    """A fresh build-context directory."""
    d = tmp_path / "ctx"
    d.mkdir()
    return d

"""One real farm (miniboxd, its redis, build and runtime workers) for the API edge tests.

It has no image at all, so no request can create a container (the schemathesis run sends
whatever the schema allows), and its daemon-side build prefix is a directory of its own:
a path build can never pack anything else of the host.  Small context limits make the
limit tests cheap."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from minibox.rmtree import remove_tree
from tests.farmkit import Farm

LIMITS = {"MINIBOX_CONTEXT_MAX_FILES": "300", "MINIBOX_CONTEXT_MAX_SIZE": "8m"}


@pytest.fixture(scope="session")
def prefix():
    d = Path(tempfile.mkdtemp(prefix="minibox-edge-prefix-", dir="/var/tmp"))
    try:
        yield d
    finally:
        remove_tree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def farm(prefix):
    f = Farm(extra_env={"MINIBOX_BUILD_PREFIXES": str(prefix), **LIMITS})
    try:
        yield f.start()
    finally:
        f.destroy()


@pytest.fixture
def srcdir(prefix, request):
    """A fresh directory under the farm's build prefix (a daemon-side context)."""
    d = Path(tempfile.mkdtemp(prefix="ctx-", dir=prefix))
    try:
        yield d
    finally:
        remove_tree(d, ignore_errors=True)


def contexts_left(farm) -> list[str]:
    d = farm.root / "contexts"
    return sorted(os.listdir(d)) if d.is_dir() else []

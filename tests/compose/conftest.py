"""Compose tests: one real farm (miniboxd with its redis, build workers and runtime worker)
per session, with a busybox image, driven through the real CLI (`minibox compose`).

Cleanup runs whatever happened: every container process of the farm is killed, then the
farm is destroyed (mounts, data root, cgroups)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.farmkit import Farm, build_busybox

if os.geteuid() != 0:
    pytest.skip("the compose tests need root", allow_module_level=True)


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    from tests.runtime.farm import kill_containers
    f = Farm()
    try:
        f.start()
        build_busybox(f, tmp_path_factory.mktemp("busybox-base"))
        yield f
    finally:
        kill_containers(f.root)
        f.destroy()


class Project:
    """A compose project directory of one test, driven through `minibox compose`."""

    def __init__(self, farm: Farm, root: Path, name: str):
        self.farm, self.dir, self.name = farm, root / name, name
        self.dir.mkdir(parents=True)

    def write(self, text: str, **files: str) -> "Project":
        (self.dir / "minibox-compose.yaml").write_text(text)
        for rel, content in files.items():
            p = self.dir / rel.replace("__", "/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
        return self

    def run(self, *args, timeout: float = 300, env: dict | None = None):
        """`minibox compose ARGS` in the project's directory."""
        import subprocess
        import sys
        e = dict(self.farm.env, **(env or {}))
        return subprocess.run([sys.executable, "-m", "minibox.cli.main", "compose", *args],
                              cwd=self.dir, env=e, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args, timeout: float = 300) -> str:
        r = self.run(*args, timeout=timeout)
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
        return r.stdout

    def containers(self) -> dict[str, dict]:
        """The farm's containers of this project by name (all states), with inspect data."""
        import json
        rows = json.loads(self.farm.cli("ps", "-a", "--json", check=True).stdout)
        out = {}
        for r in rows:
            if r["name"].startswith(self.name + "-"):
                out[r["name"]] = json.loads(self.farm.cli(
                    "inspect", "--type", "container", r["id"], check=True).stdout)[0]
        return out


@pytest.fixture
def project(farm, tmp_path, request):
    """A project named after the test (unique per run: each farm is fresh)."""
    name = "p" + request.node.name.replace("test_", "").replace("_", "")[:20].lower()
    p = Project(farm, tmp_path, name)
    try:
        yield p
    finally:
        if (p.dir / "minibox-compose.yaml").exists():
            p.run("down", "-v", "-t", "1")

"""Pulling from a real docker-registry through the daemon and the CLI."""

from __future__ import annotations

import json

from tests.farmkit import write_ctx


def test_pull_by_tag_then_run(farm, seeded):
    r = farm.cli("pull", f"{seeded.host}/library/busybox:1")
    assert r.returncode == 0, r.stderr
    assert "Pulled" in r.stdout
    name = f"{seeded.host}/library/busybox:1"
    img = farm.image(name)
    assert img["digest"] in r.stdout
    run = farm.cli("run", "--rm", "--network", "none", name, "echo", "pulled-ok")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "pulled-ok"


def test_pull_again_uses_what_is_there(farm, seeded):
    farm.cli("pull", f"{seeded.host}/library/busybox:1", check=True)
    r = farm.cli("pull", f"{seeded.host}/library/busybox:1", check=True)
    assert "Already exists" in r.stderr
    assert "Downloading" not in r.stderr


def test_pull_by_digest_verifies_it(farm, seeded):
    digest = farm.image("busybox")["digest"]
    r = farm.cli("pull", "-q", f"{seeded.host}/library/busybox@{digest}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == digest


def test_base_from_registry_through_docker_hub_mirror(farm, seeded, tmp_path):
    ctx = write_ctx(tmp_path / "ctx", {"MiniBox": "BASE alpine:latest\nBLOCK a\n"
                                                  "    RUN echo hi > /hi\n"})
    farm.build(ctx, "from-alpine")
    assert farm.image("alpine:latest")["digest"] == farm.image("busybox")["digest"]
    run = farm.cli("run", "--rm", "--network", "none", "from-alpine", "cat", "/hi")
    assert run.stdout.strip() == "hi", run.stderr

"""tag, push, login/logout, images --digests, rmi against real registries; the round trip
build -> push -> rmi -> pull -> run."""

from __future__ import annotations

import json
import os
import stat

from tests.farmkit import write_ctx
from tests.registry.registrykit import PASSWORD, USER


def test_round_trip_build_push_rmi_pull_run(farm, registry, tmp_path):
    name = f"{registry.host}/team/roundtrip:1"
    ctx = write_ctx(tmp_path / "ctx", {"MiniBox": "BASE busybox\nBLOCK a\n"
                                                  "    RUN echo round-trip > /msg\n"})
    farm.build(ctx, "roundtrip")
    assert farm.cli("tag", "roundtrip", name).returncode == 0
    digest = farm.image(name)["digest"]
    r = farm.cli("push", name)
    assert r.returncode == 0, r.stderr
    assert digest in r.stdout
    assert registry.tags("team/roundtrip") == ["1"]
    assert farm.cli("rmi", name).returncode == 0
    assert farm.cli("rmi", "roundtrip").returncode == 0
    assert farm.http().get(f"/images/{name}/json").status_code == 404
    r = farm.cli("pull", name)
    assert r.returncode == 0, r.stderr
    assert farm.image(name)["digest"] == digest
    run = farm.cli("run", "--rm", "--network", "none", name, "cat", "/msg")
    assert run.stdout.strip() == "round-trip", run.stderr


def test_push_sends_only_missing_blobs_and_mounts_across_repositories(farm, registry):
    first = f"{registry.host}/mount/a:1"
    second = f"{registry.host}/mount/b:1"
    farm.cli("tag", "busybox", first, check=True)
    r = farm.cli("push", first)
    assert r.returncode == 0, r.stderr
    r = farm.cli("push", first)
    assert "Layer already exists" in r.stderr and "Pushing" not in r.stderr
    farm.cli("tag", "busybox", second, check=True)
    r = farm.cli("push", second)
    assert r.returncode == 0, r.stderr
    assert "Mounted from " in r.stderr         # mount/a, or another repo with them
    assert "Pushing" not in r.stderr


def test_images_digests_and_json(farm):
    digest = farm.image("busybox")["digest"]
    r = farm.cli("images", "--digests")
    assert "DIGEST" in r.stdout and digest in r.stdout
    listed = json.loads(farm.cli("images", "--json").stdout)
    assert any(i["name"] == "busybox:latest" and i["digest"] == digest for i in listed)


def test_login_basic_auth_pull_push_logout(farm, basic_registry, tmp_path):
    auth_file = tmp_path / "auth.json"
    env = {"MINIBOX_AUTH_FILE": str(auth_file)}
    name = f"{basic_registry.host}/private/app:1"
    farm.cli("tag", "busybox", name, check=True)
    r = farm.cli("push", name, env=env)
    assert r.returncode != 0
    assert "requires authentication" in r.stderr and "minibox login" in r.stderr
    assert "Traceback" not in r.stderr
    r = farm.cli("login", basic_registry.host, "-u", USER, "--password-stdin",
                 input="wrong\n", env=env)
    assert r.returncode != 0 and "refused the credentials" in r.stderr
    assert not auth_file.exists()
    r = farm.cli("login", basic_registry.host, "-u", USER, "--password-stdin",
                 input=PASSWORD + "\n", env=env)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    assert PASSWORD not in auth_file.read_text()          # base64, as Docker's file
    r = farm.cli("push", name, env=env)
    assert r.returncode == 0, r.stderr
    assert basic_registry.tags("private/app") == ["1"]
    farm.cli("rmi", name, check=True)
    r = farm.cli("pull", name, env=env)
    assert r.returncode == 0, r.stderr
    assert farm.cli("logout", basic_registry.host, env=env).returncode == 0
    r = farm.cli("pull", name, env=env)
    assert r.returncode != 0 and "requires authentication" in r.stderr


def test_bearer_token_flow_anonymous_and_with_credentials(farm, token_registry, tmp_path):
    tokens = token_registry.token_server
    name = f"{token_registry.host}/tok/app:1"
    farm.cli("tag", "busybox", name, check=True)
    r = farm.cli("push", name, env={"MINIBOX_AUTH_FILE": str(tmp_path / "none.json")})
    assert r.returncode == 0, r.stderr                  # the test token server is open
    assert any("repository:tok/app:pull,push" in q["scope"] for q in tokens.requests)
    tokens.require_login = True
    try:
        farm.cli("rmi", name, check=True)
        r = farm.cli("pull", name, env={"MINIBOX_AUTH_FILE": str(tmp_path / "none.json")})
        assert r.returncode != 0 and "requires authentication" in r.stderr
        env = {"MINIBOX_AUTH_FILE": str(tmp_path / "auth.json")}
        r = farm.cli("login", token_registry.host, "-u", USER, "--password-stdin",
                     input=PASSWORD + "\n", env=env)
        assert r.returncode == 0, r.stderr
        r = farm.cli("pull", name, env=env)
        assert r.returncode == 0, r.stderr
        assert tokens.requests[-1]["user"] == USER
    finally:
        tokens.require_login = False

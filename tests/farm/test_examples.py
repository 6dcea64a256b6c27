"""The spec's example patterns, built offline: the four-block Node pattern (on an Alpine
stand-in with a fake apk and npm), a glibc Debian base (the ``debian`` fixture is in
conftest.py), PKG on Debian (stand-in apt-get)."""

from __future__ import annotations

import shutil

import pytest

from tests.farm.test_build import block_events, config_of, unpack_file
from tests.farmkit import REPO, write_ctx

EXAMPLES = REPO / "docker-free-dev/examples"


@pytest.fixture(scope="module")
def alpine_standin(farm):
    farm.build(EXAMPLES / "alpine-standin", "alpine-standin")
    return "alpine-standin"


def test_four_block_node_pattern(farm, alpine_standin, tmp_path):
    app = tmp_path / "node-app"
    shutil.copytree(EXAMPLES / "node-app", app)
    farm.build(app, "node-app")
    job = farm.last_job()
    waves = [e["blocks"] for e in farm.events(job["id"]) if e["type"] == "wave_start"]
    assert waves == [["runtime", "source"], ["deps"], ["config"]]
    cfg = config_of(farm, "node-app")
    assert "PORT=3000" in cfg["Env"] and "NODE_ENV=production" in cfg["Env"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", "node index.js"]
    assert cfg["WorkingDir"] == "/app" and cfg["ExposedPorts"] == {"3000/tcp": {}}
    # PKG went through the base's package manager; AUTO-DEPS ran npm install in /app
    assert "nodejs stand-in" in unpack_file(farm, "node-app", "usr/bin/nodejs")
    assert unpack_file(farm, "node-app", "app/node_modules/express/index.js")
    assert unpack_file(farm, "node-app", "app/node_modules/left-pad/index.js")
    # changing only source files rebuilds source and deps, not runtime
    (app / "index.js").write_text("console.log('v2')\n")
    r = farm.build(app, "node-app")
    job = farm.last_job()
    assert sorted(block_events(farm, job["id"], "block_start")) == ["deps", "source"]
    assert "runtime" in block_events(farm, job["id"], "block_cached")
    line = (app / "MiniBox").read_text().splitlines().index("    copy . /app") + 1
    assert f"[source] building: COPY sources at line {line} changed" in r.stderr
    assert "[deps] building: parent block 'source' changed" in r.stderr


def test_miniboxignore_keeps_files_out_of_the_context_and_the_key(farm, ctx):
    write_ctx(ctx, {"MiniBox": "BASE busybox\nBLOCK a\n    COPY . /app\n",
                    ".miniboxignore": "*.log\nbuild/\n", "keep.txt": "k", "noise.log": "1",
                    "build/out": "x"})
    farm.build(ctx, "ignored")
    assert unpack_file(farm, "ignored", "app/keep.txt") == "k"
    assert unpack_file(farm, "ignored", "app/noise.log") is None
    assert unpack_file(farm, "ignored", "app/build/out") is None
    (ctx / "noise.log").write_text("2")
    farm.build(ctx, "ignored")
    assert block_events(farm, farm.last_job()["id"], "block_start") == []


def test_debian_base_user_and_workdir(farm, debian, ctx):
    mb = ("BASE debian:bookworm\nBLOCK user\n    RUN useradd -m -u 1234 builder\n"
          "    USER builder\n    WORKDIR /home/builder/w\n    RUN id -un > who && pwd >> who\n"
          "BLOCK missing\n    NEED user\n    USER nobody-here\n")
    write_ctx(ctx, {"MiniBox": mb})
    r = farm.build(ctx, "deb-user", "--target", "user")
    assert unpack_file(farm, "deb-user", "home/builder/w/who") == "builder\n/home/builder/w\n"
    r = farm.build(ctx, "deb-user2", check=False)
    assert r.returncode == 1
    assert "nobody-here" in r.stderr and "passwd" in r.stderr


def test_pkg_on_debian_uses_apt_get(farm, debian, ctx):
    """PKG detects apt-get from the rootfs; a stand-in apt-get records the call (no network
    in tests)."""
    fake = ("#!/bin/sh\necho \"apt-get $*\" >> /var/log/fake-apt.log\n")
    mb = ("BASE debian:bookworm\nBLOCK fake\n    COPY apt-get /usr/local/bin/apt-get\n"
          "    RUN chmod 755 /usr/local/bin/apt-get\n"
          "BLOCK pkgs\n    NEED fake\n    PKG curl git@2.39\n")
    write_ctx(ctx, {"MiniBox": mb, "apt-get": fake})
    farm.build(ctx, "deb-pkg")
    log = unpack_file(farm, "deb-pkg", "var/log/fake-apt.log")
    assert "install" in log and "curl" in log and "git=2.39*" in log

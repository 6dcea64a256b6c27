"""With the peers through a real registry: podman pulls what minibox pushed; minibox pulls
(and builds on) what skopeo pushed from a podman-built image, inheriting its config; pull
policies, moved tags and platform selection from an image index."""

from __future__ import annotations

import hashlib
import json

from tests.farmkit import write_ctx
from tests.registry.conftest import skopeo_copy

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def test_podman_pulls_what_minibox_pushed(farm, registry, podman, tmp_path):
    ctx = write_ctx(tmp_path / "ctx", {"MiniBox": "BASE busybox\nBLOCK a\n"
                                                  "    RUN echo made-by-minibox > /who\n"})
    farm.build(ctx, "forpodman")
    name = f"{registry.host}/interop/forpodman:1"
    farm.cli("tag", "forpodman", name, check=True)
    r = farm.cli("push", name)
    assert r.returncode == 0, r.stderr
    podman("pull", "--tls-verify=false", name)
    r = podman("run", "--rm", *podman.ULIMITS, "--network", "none", name, "cat", "/who")
    assert r.stdout.strip() == "made-by-minibox"


def test_minibox_builds_on_what_skopeo_pushed_from_podman(farm, registry, podman, tmp_path):
    bb = tmp_path / "bb.tar"
    farm.cli("save", "busybox", "-o", bb, check=True)
    podman("load", "-i", str(bb))
    ctx = tmp_path / "podctx"
    write_ctx(ctx, {"hello.txt": "from podman\n", "Containerfile": (
        "FROM docker.io/library/busybox:latest\n"
        "COPY hello.txt /srv/hello.txt\n"
        "ENV GREETING=hi PODMAN_BUILT=1\n"
        "WORKDIR /srv\n"
        "USER 1234:1234\n"
        "EXPOSE 8080/tcp\n"
        "VOLUME /data\n"
        "HEALTHCHECK --interval=30s CMD true\n"
        'ENTRYPOINT ["/bin/sh", "-c"]\n'
        'CMD ["echo $GREETING from $(pwd) as $(id -u)"]\n')})
    podman("build", *podman.ULIMITS, "--format", "docker", "-t", "localhost/podbuilt:1",
           str(ctx))
    archive = tmp_path / "podbuilt.tar"
    podman("save", "--format", "docker-archive", "-o", str(archive), "localhost/podbuilt:1")
    name = f"{registry.host}/interop/podbuilt:1"
    skopeo_copy(f"docker-archive:{archive}", f"docker://{name}")   # keeps Healthcheck
    ctx2 = write_ctx(tmp_path / "mbctx", {"MiniBox": f"BASE {name}\nBLOCK more\n"
                                                     "    RUN test -f hello.txt\n"})
    farm.build(ctx2, "onpodman")
    cfg = farm.image("onpodman")["config"]["config"]
    assert "GREETING=hi" in cfg["Env"] and "PODMAN_BUILT=1" in cfg["Env"]
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "1234:1234"
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert "8080/tcp" in cfg["ExposedPorts"] and "/data" in cfg["Volumes"]
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    r = farm.cli("run", "--rm", "--network", "none", "--no-healthcheck", "onpodman")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi from /srv as 1234"


def test_pull_policies_and_a_moved_tag_rebuilds(farm, registry, tmp_path):
    name = f"{registry.host}/policy/base:1"
    farm.cli("tag", "busybox", name, check=True)
    farm.cli("push", name, check=True)
    farm.cli("rmi", name, check=True)
    ctx = write_ctx(tmp_path / "ctx", {"MiniBox": f"BASE {name}\nBLOCK a\n"
                                                  "    RUN echo one > /f\n"})
    r = farm.build(ctx, "policy", "--pull", "never", check=False)
    assert r.returncode != 0 and "--pull never" in r.stderr
    first = farm.build(ctx, "policy")                       # missing: pulled once
    assert "Pulled" in first.stderr
    again = farm.build(ctx, "policy")
    assert "Pulled" not in again.stderr and "CACHED" in again.stderr
    # move the tag: a new image under the same name in the registry
    moved = write_ctx(tmp_path / "moved", {"MiniBox": "BASE busybox\nBLOCK m\n"
                                                      "    RUN echo moved > /moved\n"})
    farm.build(moved, name)
    farm.cli("push", name, check=True)
    farm.cli("tag", "busybox", name, check=True)            # locally: the old content
    stale = farm.build(ctx, "policy")
    assert "CACHED" in stale.stderr                         # missing: the local tag is used
    fresh = farm.build(ctx, "policy", "--pull", "always")
    assert "Pulled" in fresh.stderr
    assert "the base image changed" in fresh.stderr
    r = farm.cli("run", "--rm", "--network", "none", "policy", "cat", "/moved")
    assert r.stdout.strip() == "moved", r.stderr


def test_platform_is_chosen_from_an_index(farm, registry):
    host = registry.host
    name = f"{host}/multi/img"
    farm.cli("tag", "busybox", f"{name}:amd", check=True)
    farm.cli("push", f"{name}:amd", check=True)
    with registry.client() as c:
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        manifest = c.get(f"/v2/multi/img/manifests/amd", headers=accept).content
        entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                 "size": len(manifest)}
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {**entry, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {**entry, "platform": {"os": "linux", "architecture": "amd64"}},
            {**entry, "platform": {"os": "unknown", "architecture": "unknown"}}]}).encode()
        r = c.put("/v2/multi/img/manifests/all", content=index,
                  headers={"Content-Type": OCI_INDEX})
        assert r.status_code == 201, r.text
    r = farm.cli("pull", f"{name}:all")
    assert r.returncode == 0, r.stderr
    assert farm.image(f"{name}:all")["digest"] == entry["digest"]
    r = farm.cli("pull", "--platform", "linux/arm64", f"{name}:all")
    assert r.returncode == 0, r.stderr
    r = farm.cli("pull", "--platform", "linux/s390x", f"{name}:all")
    assert r.returncode != 0
    assert "no image for linux/s390x" in r.stderr and "linux/arm64/v8" in r.stderr
    r = farm.cli("pull", "--platform", "linux", f"{name}:all")
    assert r.returncode != 0 and "invalid platform" in r.stderr

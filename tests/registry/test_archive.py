"""save and load, both directions, with the real peers: podman load/save, skopeo."""

from __future__ import annotations

import gzip
import json
import subprocess
import tarfile

import pytest

from tests.registry.conftest import skopeo_copy


def _run_cat(farm, image: str, path: str = "/bin/busybox") -> str:
    r = farm.cli("run", "--rm", "--network", "none", image, "sh", "-c",
                 f"test -f {path} && echo present")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_save_is_an_oci_layout_with_docker_manifest(farm, tmp_path):
    out = tmp_path / "bb.tar"
    r = farm.cli("save", "busybox", "-o", out)
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(tar.extractfile("manifest.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == \
        "docker.io/library/busybox:latest"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert all(p in names for p in [manifest[0]["Config"], *manifest[0]["Layers"]])
    for transport in ("oci-archive", "docker-archive"):
        r = subprocess.run(["skopeo", "inspect", f"{transport}:{out}"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, (transport, r.stderr)
        assert json.loads(r.stdout)["Digest"].startswith("sha256:")


def test_podman_loads_what_minibox_saved(farm, podman, tmp_path):
    out = tmp_path / "bb.tar"
    farm.cli("save", "busybox", "-o", out, check=True)
    r = podman("load", "-i", str(out))
    assert "busybox" in r.stdout + r.stderr
    r = podman("run", "--rm", *podman.ULIMITS, "--network", "none",
               "docker.io/library/busybox:latest", "echo", "from-podman")
    assert r.stdout.strip() == "from-podman"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_minibox_loads_what_podman_saved(farm, podman, tmp_path, fmt):
    src = tmp_path / "bb.tar"
    farm.cli("save", "busybox", "-o", src, check=True)
    podman("load", "-i", str(src))
    podman("tag", "docker.io/library/busybox:latest", f"localhost/podsaved:{fmt}")
    out = tmp_path / f"{fmt}.tar"
    podman("save", "--format", fmt, "-o", str(out), f"localhost/podsaved:{fmt}")
    r = farm.cli("load", "-i", out)
    assert r.returncode == 0, r.stderr
    assert f"Loaded image: localhost/podsaved:{fmt}" in r.stdout
    assert _run_cat(farm, f"localhost/podsaved:{fmt}") == "present"


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_minibox_loads_what_skopeo_wrote_gzipped_or_not(farm, tmp_path, transport):
    out = tmp_path / "sk.tar"
    skopeo_copy(f"oci:{farm.root}:busybox:latest", f"{transport}:{out}:skopeo/bb:{transport}")
    gz = tmp_path / "sk.tar.gz"
    gz.write_bytes(gzip.compress(out.read_bytes(), compresslevel=1))
    for path in (out, gz):
        farm.cli("rmi", f"skopeo/bb:{transport}")
        r = farm.cli("load", "-i", path)
        assert r.returncode == 0, r.stderr
        if transport == "docker-archive":
            assert f"Loaded image: skopeo/bb:{transport}" in r.stdout
        loaded = r.stdout.split("Loaded image: ")[1].strip()
        assert _run_cat(farm, loaded) == "present"


def test_save_to_stdout_load_from_stdin(farm):
    saved = subprocess.run([*farm_cli(farm), "save", "busybox", "-o", "-"],
                           capture_output=True, env=farm.env, timeout=300)
    assert saved.returncode == 0, saved.stderr
    farm.cli("tag", "busybox", "piped:1", check=True)
    farm.cli("rmi", "piped:1", check=True)
    loaded = subprocess.run([*farm_cli(farm), "load"], input=saved.stdout,
                            capture_output=True, env=farm.env, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert b"Loaded image: busybox:latest" in loaded.stdout


def farm_cli(farm) -> list[str]:
    import sys
    return [sys.executable, "-m", "minibox.cli.main"]

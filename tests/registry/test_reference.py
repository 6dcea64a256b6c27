"""Reference parsing with Docker Hub's defaults (no network: Docker Hub is never contacted)."""

from __future__ import annotations

import pytest

from minibox.errors import UserError
from minibox.registry.config import RegistryConfig
from minibox.registry.reference import parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repo, tag, digest, local", [
    ("alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
    ("alpine:3.19", "docker.io", "library/alpine", "3.19", None, "alpine:3.19"),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
    ("index.docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", None,
     "alpine:edge"),
    ("user/app:1", "docker.io", "user/app", "1", None, "user/app:1"),
    ("ghcr.io/user/repo:tag", "ghcr.io", "user/repo", "tag", None, "ghcr.io/user/repo:tag"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    (f"127.0.0.1:5000/ns/repo@{DIGEST}", "127.0.0.1:5000", "ns/repo", None, DIGEST, None),
    (f"host:5000/ns/repo:v1@{DIGEST}", "host:5000", "ns/repo", "v1", DIGEST,
     "host:5000/ns/repo:v1"),
])
def test_parse(text, registry, repo, tag, digest, local):
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)
    assert ref.local_tag == local


def test_docker_hub_is_served_by_registry_1():
    ref = parse("alpine")
    assert str(ref) == "docker.io/library/alpine:latest"
    assert ref.api_host == "registry-1.docker.io"
    assert ref.reference == "latest"
    endpoints = RegistryConfig(mirrors={}, insecure=set()).endpoints(ref.registry, ref.api_host)
    assert [e.url for e in endpoints] == ["https://registry-1.docker.io"]


def test_mirrors_first_and_http_only_for_loopback_or_insecure():
    config = RegistryConfig.from_env({"MINIBOX_REGISTRY_MIRRORS":
                                      "docker.io=http://127.0.0.1:5000,docker.io=https://m.example",
                                      "MINIBOX_INSECURE_REGISTRIES": "reg.lan:5000"})
    urls = [e.url for e in config.endpoints("docker.io", "registry-1.docker.io")]
    assert urls == ["http://127.0.0.1:5000", "https://m.example", "https://registry-1.docker.io"]
    assert config.endpoints("reg.lan:5000", "reg.lan:5000")[-1].url == "http://reg.lan:5000"
    assert config.endpoints("other.lan", "other.lan")[-1].url == "https://other.lan"
    with pytest.raises(UserError, match="plain HTTP"):
        RegistryConfig.from_env({"MINIBOX_REGISTRY_MIRRORS": "docker.io=http://m.example"}
                                ).endpoints("docker.io", "registry-1.docker.io")


@pytest.mark.parametrize("text, why", [
    ("Alpine", "lowercase"),
    ("alpine@sha256:abc", "sha256"),
    ("alpine:bad tag", "tag"),
    ("", "required"),
    ("ho$t:5000/x", "invalid"),
])
def test_bad_references_are_refused_clearly(text, why):
    with pytest.raises(UserError) as e:
        parse(text)
    assert why in e.value.render()


def test_registry_allow_list_blocks_other_hosts_before_any_request():
    from minibox.registry.client import Session

    config = RegistryConfig.from_env({"MINIBOX_REGISTRY_ALLOW": "loopback"})
    config.check_allowed("127.0.0.1:5000", "x")
    config.check_allowed("localhost", "x")
    ref = parse("alpine")
    endpoint = config.endpoints(ref.registry, ref.api_host)[-1]
    with pytest.raises(UserError, match="MINIBOX_REGISTRY_ALLOW"):
        Session(endpoint, ref.repository, None, config)

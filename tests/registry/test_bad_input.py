"""Bad registries and bad archives: a clear error, a non-zero exit, no traceback, nothing
half-done in the store, nothing written outside it, and a later good pull still works."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from tests.farmkit import free_port, write_ctx
from tests.registry.registrykit import FakeRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """(name, data or None, symlink/hardlink target) -> an uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return buf.getvalue()


def image(layers: list[bytes], media: str = OCI_MANIFEST) -> tuple[bytes, dict]:
    """(manifest bytes, blobs by digest) of an image of gzip layers."""
    gz = [gzip.compress(t) for t in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [digest(t) for t in layers]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": media,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest(g), "size": len(g)} for g in gz]}
    blobs = {digest(config): config, **{digest(g): g for g in gz}}
    return json.dumps(manifest).encode(), blobs


def snapshot(farm) -> tuple:
    root = farm.root
    tags = [e.get("annotations", {}).get("org.opencontainers.image.ref.name")
            for e in json.loads((root / "index.json").read_text())["manifests"]]
    return (sorted(os.listdir(root / "blobs" / "sha256")), sorted(os.listdir(root / "layers")),
            sorted(filter(None, tags)),
            sorted(p for p in os.listdir(root / "tmp") if not p.startswith("upload-")))


@pytest.fixture
def fake():
    f = FakeRegistry()
    try:
        yield f
    finally:
        f.stop()


def assert_refused(r, *words: str) -> None:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_unknown_image_tag_and_digest(farm, seeded):
    before = snapshot(farm)
    assert_refused(farm.cli("pull", f"{seeded.host}/library/nope:1"), "not found",
                   "MANIFEST_UNKNOWN")
    assert_refused(farm.cli("pull", f"{seeded.host}/library/busybox:nosuchtag"), "not found")
    assert_refused(farm.cli("pull", f"{seeded.host}/library/busybox@sha256:" + "0" * 64),
                   "not found")
    assert_refused(farm.cli("pull", "not a reference"), "invalid image reference")
    assert snapshot(farm) == before


def test_registry_down(farm):
    before = snapshot(farm)
    assert_refused(farm.cli("pull", f"127.0.0.1:{free_port()}/x/y:1"),
                   "cannot reach registry")
    assert snapshot(farm) == before


@pytest.mark.parametrize("manifest, media, words", [
    (b"<html>not json</html>", "text/html", ["not valid JSON"]),
    (b'{"schemaVersion": 1, "name": "x"}', "application/json", ["schemaVersion 1"]),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}',
     "application/json", ["unsupported media type", "vnd.example.thing"]),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(),
     OCI_MANIFEST, ["malformed"]),
])
def test_garbage_and_malformed_manifests(farm, fake, manifest, media, words):
    fake.manifests["1"] = (media, manifest)
    before = snapshot(farm)
    assert_refused(farm.cli("pull", f"{fake.host}/bad/img:1"), *words)
    assert snapshot(farm) == before


def test_blob_not_matching_its_digest(farm, fake, seeded):
    manifest, blobs = image([layer_tar([("hello", b"world", None)])])
    fake.manifests["1"] = (OCI_MANIFEST, manifest)
    fake.blobs = {d: (b, "wrong" if i == 1 else "ok") for i, (d, b) in enumerate(blobs.items())}
    before = snapshot(farm)
    assert_refused(farm.cli("pull", f"{fake.host}/bad/img:1"), "corrupt", "digest")
    assert snapshot(farm) == before
    fake.blobs = {d: (b, "ok") for d, b in blobs.items()}        # fixed: now it pulls
    r = farm.cli("pull", f"{fake.host}/bad/img:1")
    assert r.returncode == 0, r.stderr
    farm.cli("rmi", f"{fake.host}/bad/img:1", check=True)


def test_cut_off_download_resumes_with_range(farm, fake):
    big = os.urandom(300_000)
    manifest, blobs = image([layer_tar([("big", big, None)])])
    fake.manifests["1"] = (OCI_MANIFEST, manifest)
    fake.blobs = {d: (b, "flaky") for d, b in blobs.items()}
    r = farm.cli("pull", f"{fake.host}/flaky/img:1")
    assert r.returncode == 0, r.stderr
    assert any(h.get("Range", "").startswith("bytes=") and h["Range"] != "bytes=0-"
               for _, h in fake.requests)
    run = farm.cli("run", "--rm", "--network", "none", "busybox", "true")
    assert run.returncode == 0
    farm.cli("rmi", f"{fake.host}/flaky/img:1", check=True)


def test_download_that_never_completes(farm, fake):
    manifest, blobs = image([layer_tar([("big", os.urandom(100_000), None)])])
    fake.manifests["1"] = (OCI_MANIFEST, manifest)
    fake.blobs = {d: (b, "truncate") for d, b in blobs.items()}
    before = snapshot(farm)
    assert_refused(farm.cli("pull", f"{fake.host}/cut/img:1"), "after 5 attempts")
    assert snapshot(farm) == before


MALICIOUS_LAYERS = pytest.mark.parametrize("entries, words", [
    ([("../../escaped", b"x", None)], ["'../../escaped'", "escape"]),
    ([("/etc/evil", b"x", None)], ["absolute path"]),
    ([("link", None, "{outside}"), ("link/evil", b"x", None)], ["symlink is never followed"]),
])


def refused_on_first_use(farm, tmp_path, ref: str, words, outside) -> None:
    """A run of ``ref`` and a build on it unpack its layer, and refuse it: a clear error,
    no layer dir, no container, nothing left in tmp/, nothing written outside."""
    before = snapshot(farm)
    containers = farm.cli("ps", "-a", "-q").stdout
    assert_refused(farm.cli("run", "--rm", "--network", "none", ref, "true"), *words)
    ctx = write_ctx(tmp_path / "ctx", {"MiniBox": f"BASE {ref}\nBLOCK a\n    RUN true\n"})
    r = farm.build(ctx, "on-evil", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert any(w in r.stderr for w in words), r.stderr
    assert snapshot(farm) == before
    assert farm.cli("ps", "-a", "-q").stdout == containers
    assert os.listdir(outside) == []
    assert not (farm.root / "escaped").exists() and not (farm.root.parent / "escaped").exists()


@MALICIOUS_LAYERS
def test_malicious_layers_from_a_registry(farm, fake, tmp_path, entries, words):
    """A pull stores the layers as served and unpacks them on first use, but reads each
    one first as it will be unpacked: the pull itself refuses a hostile layer."""
    outside = tmp_path / "outside"
    outside.mkdir()
    entries = [(n, d, l.format(outside=outside) if l else l) for n, d, l in entries]
    manifest, blobs = image([layer_tar(entries)])
    fake.manifests["1"] = (OCI_MANIFEST, manifest)
    fake.blobs = {d: (b, "ok") for d, b in blobs.items()}
    before = snapshot(farm)
    assert_refused(farm.cli("pull", f"{fake.host}/evil/img:1"), *words)
    assert snapshot(farm) == before
    assert os.listdir(outside) == []
    assert not (farm.root / "escaped").exists() and not (farm.root.parent / "escaped").exists()


def test_layer_not_matching_its_diff_id_is_refused_on_first_use(farm, fake, tmp_path):
    """The pull checks a layer's tar, not its diff_id (that would hash every layer a second
    time): the first unpack does, and refuses it."""
    layer = layer_tar([("hello", b"world", None)])
    manifest, blobs = image([layer])
    config = next(b for b in blobs.values() if b.startswith(b"{"))
    bad = config.replace(digest(layer).encode(), ("sha256:" + "0" * 64).encode())
    manifest = manifest.replace(digest(config).encode(), digest(bad).encode())
    del blobs[digest(config)]
    blobs[digest(bad)] = bad
    fake.manifests["1"] = (OCI_MANIFEST, manifest)
    fake.blobs = {d: (b, "ok") for d, b in blobs.items()}
    before = snapshot(farm)
    ref = f"{fake.host}/liar/img:1"
    farm.cli("pull", ref, check=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    refused_on_first_use(farm, tmp_path, ref, ["unpacks to", "sha256:" + "0" * 64], outside)
    farm.cli("rmi", ref, check=True)
    assert snapshot(farm) == before


def docker_archive(layers: list[bytes], tags: list[str]) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [digest(t) for t in layers]}}).encode()
    files = {"config.json": config, **{f"l{i}/layer.tar": t for i, t in enumerate(layers)},
             "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": tags,
                                           "Layers": [f"l{i}/layer.tar"
                                                      for i in range(len(layers))]}]).encode()}
    return layer_tar([(n, d, None) for n, d in files.items()])


@pytest.mark.parametrize("archive, words", [
    (lambda o: docker_archive([layer_tar([("ok", b"x", None)])], ["evil:3"])[:3000],
     ["not a valid tar", "manifest.json"]),
    (lambda o: b"this is no archive at all" * 40, ["not a valid tar archive"]),
    (lambda o: layer_tar([("manifest.json", b'[{"Config": "../../../etc/passwd"}]', None)]),
     ["is not in the archive"]),
])
def test_corrupt_archives_are_refused(farm, tmp_path, archive, words):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = tmp_path / "evil.tar"
    path.write_bytes(archive(str(outside)))
    before = snapshot(farm)
    r = farm.cli("load", "-i", path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert any(w in r.stderr for w in words), r.stderr
    assert snapshot(farm) == before
    assert os.listdir(outside) == []


@pytest.mark.parametrize("layer, words", [
    (lambda o: layer_tar([("../evil", b"x", None)]), ["'../evil'"]),
    (lambda o: layer_tar([("l", None, o), ("l/evil", b"x", None)]),
     ["symlink is never followed"]),
])
def test_malicious_layers_in_an_archive(farm, tmp_path, layer, words):
    """A load stores the layers and unpacks them on first use, but reads each one first
    as it will be unpacked: the load itself refuses a hostile layer."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = tmp_path / "evil.tar"
    path.write_bytes(docker_archive([layer(str(outside))], ["evil:1"]))
    before = snapshot(farm)
    assert_refused(farm.cli("load", "-i", path), *words)
    assert snapshot(farm) == before
    assert os.listdir(outside) == []
    assert "evil:1" not in farm.cli("images").stdout


def oci_archive(layers: list[bytes], tag: str, extra: dict | None = None) -> tuple[bytes, dict]:
    """An OCI layout archive of one image of gzip ``layers`` (and ``extra`` members); also
    its blobs by digest."""
    manifest, blobs = image(layers)
    blobs[digest(manifest)] = manifest
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": f"docker.io/library/{tag}"}}]}
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
             **{f"blobs/sha256/{d[7:]}": b for d, b in blobs.items()},
             **(extra or {}), "index.json": json.dumps(index).encode()}
    return layer_tar([(n, d, None) for n, d in files.items()]), blobs


def test_archive_blobs_that_do_not_match_their_names_are_refused(farm, tmp_path):
    layer = layer_tar([("big", os.urandom(3 << 20), None)])
    good, blobs = oci_archive([layer], "tampered:1")
    before = snapshot(farm)
    for target in blobs.values():                 # the layer (copied as it arrives), the
        at = good.index(target) + len(target) // 2            # config, the manifest
        bad = good[:at] + bytes([good[at] ^ 1]) + good[at + 1:]
        path = tmp_path / "tampered.tar"
        path.write_bytes(bad)
        assert_refused(farm.cli("load", "-i", path), "corrupt")
        assert snapshot(farm) == before


def test_archive_cut_off_in_the_middle_of_a_layer_leaves_nothing(farm, tmp_path):
    import socket
    import time

    data, _ = oci_archive([layer_tar([("big", os.urandom(6 << 20), None)])], "cut:1")
    before = snapshot(farm)
    host, port = farm.api.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}"
                     f"\r\nAuthorization: Bearer {farm.token()}\r\n\r\n".encode())
        sock.sendall(data[:4 << 20])              # and the client goes away
    # the daemon starts on it (a temp file, a blob) — unless it was all over between two
    # looks — and then undoes itself as it notices; only then does the whole one go in (two
    # loads of the same blobs at once would share them)
    started = time.monotonic() + 30
    while snapshot(farm) == before and time.monotonic() < started:
        time.sleep(0.05)
    deadline = time.monotonic() + 120
    while snapshot(farm) != before:
        assert time.monotonic() < deadline, (snapshot(farm), before)
        time.sleep(0.2)
    path = tmp_path / "whole.tar"                 # the whole archive still loads
    path.write_bytes(data)
    r = farm.cli("load", "-i", path)
    assert r.returncode == 0, r.stderr
    farm.cli("rmi", "cut:1", check=True)
    assert snapshot(farm) == before


def test_large_archive_members_no_image_uses_are_not_kept(farm, tmp_path):
    junk = os.urandom(2 << 20)
    data, blobs = oci_archive([layer_tar([("f", b"x", None)])], "withjunk:1",
                              {"junk.bin": junk, f"blobs/sha256/{digest(junk)[7:]}": junk})
    path = tmp_path / "junk.tar"
    path.write_bytes(data)
    before = snapshot(farm)
    r = farm.cli("load", "-i", path)
    assert r.returncode == 0, r.stderr
    stored = set(os.listdir(farm.root / "blobs" / "sha256"))
    assert {d[7:] for d in blobs} <= stored and digest(junk)[7:] not in stored
    farm.cli("rmi", "withjunk:1", check=True)
    assert snapshot(farm) == before


def test_malicious_base_tarball_in_a_build(farm, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ctx = write_ctx(tmp_path / "ctx", {
        "MiniBox": "BASE evil.tar\nBLOCK a\n    RUN true\n",
        "evil.tar": layer_tar([("bin", None, str(outside)), ("bin/sh", b"#!x", None)])})
    before = snapshot(farm)
    r = farm.build(ctx, "evilbase", check=False)
    assert r.returncode != 0 and "symlink is never followed" in r.stderr, r.stderr
    assert snapshot(farm)[1:] == before[1:]      # the archive blob itself may stay
    assert os.listdir(outside) == []

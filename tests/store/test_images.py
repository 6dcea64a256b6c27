"""Writing images: OCI config/manifest shape, determinism, and real OCI tools reading them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from minibox.store.layertar import commit_upper
from minibox.store.oci import (EMPTY_TAR_DIFF_ID, MEDIA_CONFIG, MEDIA_MANIFEST,
                               host_architecture)

from .conftest import needs_root, overlay

CREATED = "2024-05-01T12:00:00Z"
CONFIG = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["/bin/sh"], "WorkingDir": "/srv",
          "Labels": {"x": "y"}, "ExposedPorts": {"80/tcp": {}}}


def make_upper(store, files: dict[str, bytes]):
    upper = store.tmp_dir("upper-")
    for name, data in files.items():
        path = upper / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (1_700_000_000, 1_700_000_000))
    return upper


def test_write_image_shape(store):
    layer = commit_upper(store, make_upper(store, {"etc/hello": b"hi\n"}), "gzip")
    desc = store.write_image("app", CONFIG, [layer], created=CREATED)
    assert desc.media_type == MEDIA_MANIFEST
    manifest = store.read_json(desc.digest)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MEDIA_MANIFEST
    assert manifest["config"]["mediaType"] == MEDIA_CONFIG
    assert manifest["layers"] == [{"mediaType": layer.media_type, "digest": layer.digest,
                                   "size": layer.size}]
    config = store.read_json(manifest["config"]["digest"])
    assert config["architecture"] == host_architecture()
    assert config["os"] == "linux" and config["created"] == CREATED
    assert config["config"] == CONFIG
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id]}
    assert layer.diff_id != layer.digest                   # diff_id: the uncompressed tar
    assert len(config["history"]) == 1

    image = store.resolve("app:latest")
    assert image.layers[0].digest == layer.digest and image.diff_ids == [layer.diff_id]
    assert image.runtime_config == CONFIG
    assert image.layer_infos()[0] == layer

    [summary] = store.list_images()
    assert summary.name == "app:latest" and summary.digest == desc.digest
    assert summary.created == CREATED
    assert summary.size == desc.size + manifest["config"]["size"] + layer.size


def test_write_image_is_deterministic(store):
    layer = commit_upper(store, make_upper(store, {"f": b"data"}))
    a = store.write_image("a", CONFIG, [layer], created=CREATED)
    b = store.write_image("b", dict(reversed(list(CONFIG.items()))), [layer], created=CREATED)
    assert a.digest == b.digest
    c = store.write_image("c", CONFIG, [layer], created="2024-05-02T00:00:00Z")
    assert c.digest != a.digest


def test_write_image_is_labelled_with_the_platform_given(store):
    layer = commit_upper(store, make_upper(store, {"f": b"data"}))
    desc = store.write_image("arm", CONFIG, [layer], created=CREATED, platform="linux/arm/v7")
    config = store.read_json(store.read_json(desc.digest)["config"]["digest"])
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    assert desc.platform == {"os": "linux", "architecture": "arm", "variant": "v7"}
    assert store.resolve("arm").platform == "linux/arm/v7"
    native = store.write_image("native", CONFIG, [layer], created=CREATED)
    assert store.resolve("native").platform == f"linux/{host_architecture()}"
    assert native.digest != desc.digest      # same layers and config, another platform


def test_write_image_history_must_match_layers(store):
    layer = commit_upper(store, make_upper(store, {"f": b"data"}))
    history = [{"created_by": "BASE scratch", "empty_layer": True},
               {"created_by": "RUN make"}]
    desc = store.write_image("h", {}, [layer], created=CREATED, history=history)
    assert store.resolve("h").history == history
    with pytest.raises(ValueError):
        store.write_image("h2", {}, [layer, layer], created=CREATED, history=history)


def test_empty_upper_is_a_valid_empty_layer(store):
    layer = commit_upper(store, store.tmp_dir("upper-"))
    assert layer.empty and layer.diff_id == EMPTY_TAR_DIFF_ID
    assert store.read_blob(layer.digest) == bytes(1024)
    assert store.layer_dir(layer.diff_id).is_dir()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@needs_root
def test_skopeo_and_umoci_read_the_store(store, scratch):
    skopeo, umoci = _tool("skopeo"), _tool("umoci")
    bottom = commit_upper(store, make_upper(store, {"a/keep": b"keep\n", "a/gone": b"x\n",
                                                    "old/f": b"old\n"}), "none")
    lower = store.layer_dir(bottom.diff_id)
    upper, work = store.tmp_dir("upper-"), store.tmp_dir("work-")
    with overlay(scratch / "merged", [lower], upper, work) as merged:
        (merged / "a" / "gone").unlink()
        shutil.rmtree(merged / "old")
        (merged / "old").mkdir()
        (merged / "old" / "new").write_text("new\n")
        (merged / "bin").mkdir()
        (merged / "bin" / "tool").write_text("#!/bin/sh\n")
        (merged / "bin" / "tool").chmod(0o4755)
    top = commit_upper(store, upper, "gzip")
    desc = store.write_image("demo:1", CONFIG, [bottom, top], created=CREATED)

    out = subprocess.run([skopeo, "inspect", f"oci:{store.root}:demo:1"], check=True,
                         capture_output=True, text=True).stdout
    info = json.loads(out)
    assert info["Digest"] == desc.digest
    assert info["Layers"] == [bottom.digest, top.digest]
    assert info["Env"] == CONFIG["Env"] and info["Architecture"] == host_architecture()
    raw = subprocess.run([skopeo, "inspect", "--config", f"oci:{store.root}:demo:1"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(raw)["rootfs"]["diff_ids"] == [bottom.diff_id, top.diff_id]

    listed = subprocess.run([umoci, "ls", "--layout", str(store.root)], check=True,
                            capture_output=True, text=True).stdout.split()
    assert listed == ["demo:1"]
    bundle = scratch / "bundle"
    subprocess.run([umoci, "unpack", "--image", f"{store.root}:demo:1", str(bundle)],
                   check=True, capture_output=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / "a" / "keep").read_text() == "keep\n"
    assert not (rootfs / "a" / "gone").exists()                   # whiteout applied
    assert sorted(p.name for p in (rootfs / "old").iterdir()) == ["new"]   # opaque dir
    assert (rootfs / "bin" / "tool").stat().st_mode & 0o7777 == 0o4755
    assert not list(rootfs.rglob(".wh.*"))


def test_skopeo_copies_zstd_image_verifying_digests(store, scratch):
    """umoci 0.4.7 cannot unpack zstd layers; skopeo copy still checks every blob digest."""
    skopeo = _tool("skopeo")
    layer = commit_upper(store, make_upper(store, {"x": os.urandom(100_000)}), "zstd")
    assert layer.media_type.endswith("+zstd")
    store.write_image("z", {}, [layer], created=CREATED)
    subprocess.run([skopeo, "copy", "-q", f"oci:{store.root}:z:latest",
                    f"dir:{scratch / 'copy'}"], check=True, capture_output=True)
    assert (scratch / "copy" / layer.digest.split(":")[1]).stat().st_size == layer.size


def test_a_layer_unpacked_by_many_at_once_is_unpacked_once(store, scratch):
    """Containers started together from a freshly pulled image all wait for one unpack."""
    import io
    import tarfile
    import threading

    from minibox.store.layerinfo import LayerInfo

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(200):
            info = tarfile.TarInfo(f"f{i}")
            info.size = 10_000
            tar.addfile(info, io.BytesIO(bytes(10_000)))
    blob = store.put_blob_bytes(buf.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    layer = LayerInfo(blob.digest, blob.digest, blob.size, blob.media_type)
    made = []
    tmp_dir = store.tmp_dir

    def counting_tmp_dir(prefix="work-"):
        made.append(prefix)
        return tmp_dir(prefix)

    store.tmp_dir = counting_tmp_dir
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.ensure_layer_dir(layer)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len(set(results)) == 1 and results[0].is_dir()
    assert made == ["layer-"]
    assert len(list(results[0].iterdir())) == 200
    assert [p for p in store.layout.layers.iterdir() if p.name.startswith(".")] == []
    assert list(store.layout.tmp.iterdir()) == []
